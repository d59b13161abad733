// Server-sent events as the browsers' parser reads them: frames split by a blank line, `data:` lines
// joined, comments (`: ping`) and other fields left out. Returns each frame's data, in order.
export function sseData(text) {
  const out = [];
  for (const frame of text.replace(/\r\n/g, "\n").split("\n\n")) {
    const data = frame
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""));
    if (data.length) out.push(data.join("\n"));
  }
  return out;
}

// A fetch that hands the caller the response as usual and keeps a copy of the body's text.
export function teeFetch(captured) {
  return async (url, init) => {
    const response = await fetch(url, init);
    const entry = { status: response.status, headers: Object.fromEntries(response.headers), body: "" };
    captured.push(entry);
    if (!response.body) return response;
    const [mine, theirs] = response.body.tee();
    entry.done = new Response(mine).text().then((text) => (entry.body = text));
    return new Response(theirs, { status: response.status, headers: response.headers });
  };
}
