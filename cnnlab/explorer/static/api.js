// Talking to the server: every answer is JSON; an error is {"error": "<one sentence>"}.

async function answer(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`the server answered ${response.status} without JSON.`);
  }
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}.`);
  return body;
}

export async function getJSON(url) {
  return answer(await fetch(url));
}

export async function postJSON(url, data) {
  return answer(await fetch(url, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(data),
  }));
}

export async function postForm(url, form) {
  return answer(await fetch(url, {method: "POST", body: form}));
}

// Show an error sentence where the user acted (and clear it on success).
export function showError(element, error) {
  element.textContent = error ? (error.message || String(error)) : "";
}
