/** A POST of JSON to a service's HTTP port, as curl or a browser would send it. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; ok: boolean; headers: Headers; contentType: string; text: string }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, ok: res.ok, headers: res.headers, contentType: res.headers.get("content-type") ?? "", text: await res.text() };
}
