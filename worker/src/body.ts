// Bounded reads of bodies, shared by the request path (index.ts) and the fetches of idp.ts.

/**
 * Reads at most `max` bytes of a request's or a response's body. Returns null when the body is
 * larger (by Content-Length or by what arrived), without holding more than `max` bytes: the
 * core answers 413 for an oversized request, and idp.ts refuses an oversized document.
 */
export async function readBody(req: Request | Response, max: number): Promise<Uint8Array | null> {
  const declared = req.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > max) return null;
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
