// What a front-end on another origin does with mtfu: log in with fetch, upload a multipart form,
// list, upload through tus-js-client in 5 MiB chunks, resume after a reload from tus-js-client's
// stored fingerprint, download and check SHA-256. run.mjs calls these one by one.
'use strict';

const BASE = new URLSearchParams(location.search).get('base');
const MiB = 1024 * 1024;
const RESOURCE = 'browser';
const RESOURCE_ID = 'page-1';

/** `len` pseudo-random bytes, the same for the same seed (so a reload makes the same file). */
function bytes(len, seed) {
  const out = new Uint8Array(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A file a user could have picked: fixed name, type and date, so its fingerprint is stable. */
function file(name, len, seed) {
  return new File([bytes(len, seed)], name, {
    type: 'application/octet-stream',
    lastModified: 1700000000000,
  });
}

async function sha256(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function login() {
  const r = await fetch(`${BASE}/api/token/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'john1', password: 'test' }),
  });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${await r.text()}`);
  return (await r.json()).access;
}

async function multipart(token) {
  const f = file('form.bin', 300 * 1024, 1);
  const form = new FormData();
  form.append('resource', RESOURCE);
  form.append('resource_id', RESOURCE_ID);
  form.append('file', f);
  const r = await fetch(`${BASE}/api/upload`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'X-Request-Id': 'browser-multipart' },
    body: form,
  });
  const body = await r.json();
  if (r.status !== 200) throw new Error(`upload: ${r.status} ${JSON.stringify(body)}`);
  // An exposed response header a script could not read without Access-Control-Expose-Headers.
  if (r.headers.get('X-Request-Id') !== 'browser-multipart') throw new Error('X-Request-Id not readable');
  return { url: body.file.url, sha256: await sha256(f) };
}

async function list(token) {
  const r = await fetch(`${BASE}/api/files/${RESOURCE}/${RESOURCE_ID}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (r.status !== 200) throw new Error(`list: ${r.status} ${await r.text()}`);
  return (await r.json()).files;
}

async function download(url) {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`download ${url}: ${r.status}`);
  return sha256(await r.blob());
}

function tusOptions(token, f, extra) {
  return {
    endpoint: `${BASE}/api/v2/uploads`,
    chunkSize: 5 * MiB,
    retryDelays: [],
    headers: { Authorization: `Bearer ${token}` },
    metadata: { filename: f.name, filetype: f.type, resource: RESOURCE, resource_id: RESOURCE_ID },
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    ...extra,
  };
}

/** A whole tus upload; the chunks' acknowledged offsets and the upload's URL. */
function tusUpload(token, f, extra = {}) {
  return new Promise((resolve, reject) => {
    const offsets = [];
    const upload = new tus.Upload(f, tusOptions(token, f, {
      onChunkComplete: (_size, accepted) => offsets.push(accepted),
      onError: reject,
      onSuccess: () => resolve({ url: upload.url, offsets }),
      ...extra,
    }));
    upload.start();
  });
}

/** The file's download link, from the listing. */
async function linkOf(token, name) {
  const f = (await list(token)).find((x) => x.name === name);
  if (!f) throw new Error(`${name} not listed`);
  return f.url;
}

window.steps = {
  async loginUploadList() {
    const token = await login();
    const up = await multipart(token);
    const names = (await list(token)).map((f) => f.name);
    const downloaded = await download(up.url);
    return { names, same: downloaded === up.sha256 };
  },

  async tus20MiB() {
    const token = await login();
    const f = file('tus-20MiB.bin', 20 * MiB, 2);
    const done = await tusUpload(token, f);
    const downloaded = await download(await linkOf(token, f.name));
    return { offsets: done.offsets, same: downloaded === (await sha256(f)) };
  },

  /** Start a 12 MiB upload and abort it once its first 5 MiB chunk is acknowledged. */
  async startAndAbort() {
    const token = await login();
    const f = file('resumed.bin', 12 * MiB, 3);
    return new Promise((resolve, reject) => {
      const upload = new tus.Upload(f, tusOptions(token, f, {
        onChunkComplete: (_size, accepted) => {
          upload.abort(false).then(() => resolve({ url: upload.url, offset: accepted }), reject);
        },
        onError: reject,
        onSuccess: () => reject(new Error('finished although aborted')),
      }));
      upload.start();
    });
  },

  /** After a reload: find the aborted upload by the file's stored fingerprint and finish it. */
  async resume() {
    const token = await login();
    const f = file('resumed.bin', 12 * MiB, 3);
    const offsets = [];
    const url = await new Promise((resolve, reject) => {
      const upload = new tus.Upload(f, tusOptions(token, f, {
        onChunkComplete: (_size, accepted) => offsets.push(accepted),
        onError: reject,
        onSuccess: () => resolve(upload.url),
      }));
      upload.findPreviousUploads().then((previous) => {
        if (previous.length !== 1) throw new Error(`${previous.length} previous uploads stored`);
        upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      }).catch(reject);
    });
    const downloaded = await download(await linkOf(token, f.name));
    const stored = await new tus.Upload(f, tusOptions(token, f)).findPreviousUploads();
    return { url, offsets, same: downloaded === (await sha256(f)), storedAfter: stored.length };
  },

  /** From an origin mtfu does not allow, the browser refuses to hand over any answer. */
  async refused() {
    try {
      await login();
      return 'answered';
    } catch (e) {
      return e instanceof TypeError ? 'refused' : `other: ${e}`;
    }
  },
};
