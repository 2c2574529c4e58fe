/**
 * The name a connection asks for in its first bytes: the server name of
 * a TLS ClientHello, or the Host header of an HTTP request. In the `allow`
 * zone an address learned from an allowed name may be shared by other
 * names (a CDN, a proxy); the name the client asks for tells them apart.
 *
 * @module
 */
import { normalizeName } from "./allow_pattern.ts";

/** What the first bytes of a connection say. */
export type RequestName =
  | { readonly kind: "incomplete" }
  | { readonly kind: "tls" | "http"; readonly name: string | undefined }
  | { readonly kind: "other" };

/** The most bytes read before giving up on a name. */
export const maxRequestHeadBytes = 16 * 1024;

const _methodNames = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PROPFIND"];
const _methods = new RegExp(`^(${_methodNames.join("|")}) `);

/** Reads the first bytes the client sent, `head`. */
export function requestName(head: Uint8Array): RequestName {
  if (head.length === 0) return { kind: "incomplete" };
  if (head[0] === 0x16) return _tls(head);
  const text = new TextDecoder("latin1").decode(head.subarray(0, maxRequestHeadBytes));
  if (_methods.test(text)) {
    const end = text.indexOf("\r\n\r\n");
    const headers = end < 0 ? text : text.slice(0, end);
    const host = /\r\nhost:[ \t]*([^\r\n]*)/i.exec(headers);
    if (host) {
      const value = host[1].trim().replace(/:[0-9]+$/, "");
      return { kind: "http", name: normalizeName(value) };
    }
    if (end < 0 && head.length < maxRequestHeadBytes) return { kind: "incomplete" };
    return { kind: "http", name: undefined };
  }
  if (_methodNames.some((method) => `${method} `.startsWith(text))) return { kind: "incomplete" };
  return { kind: "other" };
}

function _tls(head: Uint8Array): RequestName {
  // One or more TLS records carry the handshake message; gather its bytes.
  const handshake: number[] = [];
  let at = 0;
  let need = -1;
  while (at + 5 <= head.length) {
    if (head[at] !== 0x16) return { kind: "tls", name: undefined };
    const length = (head[at + 3] << 8) | head[at + 4];
    const end = Math.min(head.length, at + 5 + length);
    for (let i = at + 5; i < end; i++) handshake.push(head[i]);
    if (handshake.length >= 4 && need < 0) {
      if (handshake[0] !== 0x01) return { kind: "tls", name: undefined };
      need = 4 + ((handshake[1] << 16) | (handshake[2] << 8) | handshake[3]);
    }
    if (need >= 0 && handshake.length >= need) {
      return { kind: "tls", name: _sni(new Uint8Array(handshake.slice(0, need))) };
    }
    if (end < at + 5 + length) break;
    at = end;
  }
  return head.length >= maxRequestHeadBytes ? { kind: "tls", name: undefined } : { kind: "incomplete" };
}

function _sni(hello: Uint8Array): string | undefined {
  let at = 4 + 2 + 32;
  if (at >= hello.length) return undefined;
  at += 1 + hello[at];
  if (at + 2 > hello.length) return undefined;
  at += 2 + ((hello[at] << 8) | hello[at + 1]);
  if (at >= hello.length) return undefined;
  at += 1 + hello[at];
  if (at + 2 > hello.length) return undefined;
  const end = Math.min(hello.length, at + 2 + ((hello[at] << 8) | hello[at + 1]));
  at += 2;
  while (at + 4 <= end) {
    const type = (hello[at] << 8) | hello[at + 1];
    const length = (hello[at + 2] << 8) | hello[at + 3];
    at += 4;
    if (at + length > end) return undefined;
    if (type === 0) {
      // server_name: a list; the first host_name entry.
      let p = at + 2;
      while (p + 3 <= at + length) {
        const kind = hello[p];
        const nameLength = (hello[p + 1] << 8) | hello[p + 2];
        p += 3;
        if (p + nameLength > at + length) return undefined;
        if (kind === 0) return normalizeName(new TextDecoder("latin1").decode(hello.subarray(p, p + nameLength)));
        p += nameLength;
      }
      return undefined;
    }
    at += length;
  }
  return undefined;
}
