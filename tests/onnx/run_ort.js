// Runs an ONNX model in ONNX Runtime (npm onnxruntime-node) over the images of an IDX file and
// writes the logits as little-endian float32, images x classes.
//   node run_ort.js MODEL.onnx IMAGES-idx3-ubyte[.gz] COUNT OUT.f32
// NODE_PATH (or a node_modules beside the caller) must hold onnxruntime-node. Pixels are scaled
// to [0, 1] like libmpq's runtime; a model with a fixed batch of 1 runs image by image.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

async function main() {
  const [model, images, countArg, out] = process.argv.slice(2);
  let buf = fs.readFileSync(images);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  const rank = buf[3];
  const dims = [];
  for (let k = 0; k < rank; k++) dims.push(buf.readUInt32BE(4 + 4 * k));
  const per = dims.slice(1).reduce((a, b) => a * b, 1);
  const count = Math.min(parseInt(countArg, 10) || dims[0], dims[0]);
  const session = await ort.InferenceSession.create(model);
  const inputName = session.inputNames[0];
  const chw = dims.length === 3 ? [1, dims[1], dims[2]] : dims.slice(1);
  const batch = 1;
  let result = null, classes = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    const x = new Float32Array(n * per);
    const base = 4 + 4 * rank + i * per;
    for (let k = 0; k < n * per; k++) x[k] = buf[base + k] / 255;
    const feeds = {};
    feeds[inputName] = new ort.Tensor('float32', x, [n, ...chw]);
    const res = await session.run(feeds);
    const y = res[session.outputNames[0]].data;
    if (!result) {
      classes = y.length / n;
      result = new Float32Array(count * classes);
    }
    result.set(y, i * classes);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.writeFileSync(out, Buffer.from(result.buffer));
  console.log(JSON.stringify({images: count, classes, seconds: secs}));
}

main().catch((e) => { console.error(e.message || e); process.exit(1); });
