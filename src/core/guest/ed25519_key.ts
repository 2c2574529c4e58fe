/**
 * Ed25519 key pairs in OpenSSH's formats, made in-process with WebCrypto:
 * a project's host key costs no ssh-keygen process (create and clone are
 * mostly waiting on processes).
 *
 * @module
 */

/** A new key pair: the private key as an OpenSSH file, the public one as a line (`ssh-ed25519 AAAA… comment`). */
export async function generateEd25519(comment: string): Promise<{ privateKey: string; publicKey: string }> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]) as CryptoKeyPair;
  // PKCS#8 of Ed25519 ends with the 32-byte seed (RFC 8410).
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const seed = pkcs8.slice(pkcs8.length - 32);
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const publicBlob = _concat(_string("ssh-ed25519"), _string(pub));
  const check = crypto.getRandomValues(new Uint8Array(4));
  let secret = _concat(
    check,
    check,
    _string("ssh-ed25519"),
    _string(pub),
    _string(_concat(seed, pub)),
    _string(comment),
  );
  // Padded to the cipher's block size (8 for "none") with 1, 2, 3, …
  const padding = (8 - (secret.length % 8)) % 8;
  secret = _concat(secret, Uint8Array.from({ length: padding }, (_, i) => i + 1));
  const body = _concat(
    new TextEncoder().encode("openssh-key-v1\0"),
    _string("none"),
    _string("none"),
    _string(new Uint8Array(0)),
    _uint32(1),
    _string(publicBlob),
    _string(secret),
  );
  const base64 = _base64(body).match(/.{1,70}/g)!.join("\n");
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${base64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${_base64(publicBlob)} ${comment}`,
  };
}

function _uint32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

/** An SSH wire-format string: its length, then its bytes. */
function _string(value: string | Uint8Array): Uint8Array {
  const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
  return _concat(_uint32(bytes.length), bytes);
}

function _concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function _base64(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}
