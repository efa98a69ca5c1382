"""Pure NumPy forward/backward pairs: the mathematics of every CNN primitive, no Tensors."""
