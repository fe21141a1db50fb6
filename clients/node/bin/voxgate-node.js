#!/usr/bin/env node
'use strict';
/**
 * voxgate-node synth TEXT [-o out.wav] [--format wav|pcm|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
 * voxgate-node generate PROMPT [--system TEXT] [--model M] [--max-tokens N] [--no-stream] [--json]
 * voxgate-node synth-stdin [-o out.wav] [--format F] [--sample-rate HZ] [--voice V] [--model M]
 * voxgate-node speak PROMPT [-o out.wav] [--format F] [--sample-rate HZ] [--voice V] [--model M]
 * All take --server HOST:PORT (default 127.0.0.1:50051) and --timeout SECONDS (default 60).
 * Exit status: 0 done, 1 the call failed (the gRPC status is printed), 2 bad usage.
 */

const path = require('node:path');
const { parseArgs } = require('node:util');
const { VoxgateClient, describeError } = require('../lib/voxgate');

const FORMATS = { pcm: 'AUDIO_FORMAT_PCM', wav: 'AUDIO_FORMAT_WAV', mp3: 'AUDIO_FORMAT_MP3', opus: 'AUDIO_FORMAT_OPUS' };
const COMMON = {
  server: { type: 'string', default: '127.0.0.1:50051' },
  timeout: { type: 'string', default: '60' },
  model: { type: 'string', default: '' },
  help: { type: 'boolean', short: 'h', default: false },
};
const USAGE = `usage: voxgate-node synth TEXT [-o FILE] [--format pcm|wav|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
       voxgate-node generate PROMPT [--system TEXT] [--model M] [--max-tokens N] [--no-stream] [--json]
       voxgate-node synth-stdin [-o FILE] [--format pcm|wav|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
       voxgate-node speak PROMPT [-o FILE] [--format pcm|wav|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
common options: --server HOST:PORT (default 127.0.0.1:50051), --timeout SECONDS (default 60)`;

class UsageError extends Error {}

function parse(argv, options) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON, ...options }, allowPositionals: true });
  } catch (error) {
    throw new UsageError(error.message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length !== 1) throw new UsageError('expected exactly one text argument');
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) throw new UsageError(`--timeout must be a positive number of seconds, got ${values.timeout}`);
  return { values, text: positionals[0], timeoutMs: timeoutS * 1000 };
}

function integerOption(values, name) {
  if (values[name] === undefined) return undefined;
  const number = Number(values[name]);
  if (!Number.isInteger(number) || number < 0) throw new UsageError(`--${name} must be a whole number`);
  return number;
}

async function synth(argv) {
  const { values, text, timeoutMs } = parse(argv, {
    output: { type: 'string', short: 'o', default: 'out.wav' },
    format: { type: 'string' },
    'sample-rate': { type: 'string' },
    voice: { type: 'string', default: '' },
  });
  const formatName = values.format ?? (path.extname(values.output).slice(1).toLowerCase() || 'wav');
  if (!(formatName in FORMATS)) throw new UsageError(`cannot tell the format from ${values.output}; pass --format`);
  const request = {
    text,
    model: values.model,
    voice: values.voice,
    format: FORMATS[formatName],
    sampleRate: integerOption(values, 'sample-rate') ?? 0,
  };
  const client = new VoxgateClient(values.server);
  try {
    const result = await client.synthesizeToFile(request, values.output, { timeoutMs });
    const s = result.summary;
    console.log(
      `wrote ${values.output}: ${result.audioBytes} bytes ${formatName} at ${s.sampleRate} Hz\n` +
        `first packet ${result.clientFirstPacketMs.toFixed(1)} ms (client), ` +
        `${s.firstPacketDelayMs.toFixed(1)} ms in voxgate, ${s.upstreamFirstPacketDelayMs.toFixed(1)} ms upstream\n` +
        `connection ${s.connectionReused ? 'reused' : 'new'} (age ${(s.connectionAgeMs / 1000).toFixed(1)} s, ` +
        `pool wait ${s.poolWaitMs.toFixed(1)} ms), ` +
        `task ${s.taskId}, ${s.characters} characters, ${s.attempts} attempt(s)`,
    );
  } finally {
    client.close();
  }
}

async function generate(argv) {
  const { values, text, timeoutMs } = parse(argv, {
    system: { type: 'string' },
    'max-tokens': { type: 'string' },
    'no-stream': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  });
  const messages = values.system === undefined ? [] : [{ role: 'system', content: values.system }];
  messages.push({ role: 'user', content: text });
  const maxTokens = integerOption(values, 'max-tokens');
  const request = { model: values.model, messages, sampling: maxTokens === undefined ? {} : { maxTokens } };
  const client = new VoxgateClient(values.server);
  try {
    const started = performance.now();
    if (values['no-stream']) {
      const response = await client.generate(request, { timeoutMs });
      if (values.json) {
        console.log(JSON.stringify(response));
      } else {
        const answerMs = (performance.now() - started).toFixed(1);
        console.log(`${response.text}\n${finishLine(response)}\nanswer in ${answerMs} ms (client); ${origin(response)}`);
      }
      return;
    }
    let last = null;
    let firstTokenMs = null;
    for await (const response of client.generateStream(request, { timeoutMs })) {
      if (firstTokenMs === null && response.delta) firstTokenMs = performance.now() - started;
      // Each piece goes out the moment it arrives: one JSON line per message with --json.
      process.stdout.write(values.json ? `${JSON.stringify(response)}\n` : response.delta);
      last = response;
    }
    if (!values.json) {
      console.log(
        `\n${finishLine(last)}\nfirst token ${(firstTokenMs ?? 0).toFixed(1)} ms (client), ` +
          `${last.timeToFirstTokenMs} ms in voxgate; ${origin(last)}`,
      );
    }
  } finally {
    client.close();
  }
}

const AUDIO_OPTIONS = {
  output: { type: 'string', short: 'o', default: 'out.wav' },
  format: { type: 'string' },
  'sample-rate': { type: 'string' },
  voice: { type: 'string', default: '' },
};

function speechConfig(values, model) {
  const formatName = values.format ?? (path.extname(values.output).slice(1).toLowerCase() || 'wav');
  if (!(formatName in FORMATS)) throw new UsageError(`cannot tell the format from ${values.output}; pass --format`);
  const config = { model, voice: values.voice, format: FORMATS[formatName], sampleRate: integerOption(values, 'sample-rate') ?? 0 };
  return { formatName, config };
}

/** Write `{ audio }` items to `filePath` as they come (WAV sizes patched at the end); other items go to `onItem`. */
async function audioToFile(items, filePath, format, onItem) {
  const fs = require('node:fs');
  const file = await fs.promises.open(filePath, 'w');
  let audioBytes = 0;
  try {
    for await (const item of items) {
      if (item.audio === undefined) {
        onItem(item);
        continue;
      }
      await file.write(item.audio);
      audioBytes += item.audio.length;
    }
    if (format === 'AUDIO_FORMAT_WAV' && audioBytes >= 44) {
      const size = Buffer.alloc(4);
      size.writeUInt32LE(audioBytes - 8);
      await file.write(size, 0, 4, 4);
      size.writeUInt32LE(audioBytes - 44);
      await file.write(size, 0, 4, 40);
    }
  } finally {
    await file.close();
  }
  return audioBytes;
}

async function synthStdin(argv) {
  const { values, timeoutMs } = parse(['-', ...argv], AUDIO_OPTIONS);
  const { formatName, config } = speechConfig(values, values.model);
  process.stdin.setEncoding('utf8'); // each chunk read is one piece, as the writer flushed it
  const client = new VoxgateClient(values.server);
  try {
    let summary = null;
    const items = client.synthesizeTextStream(config, process.stdin, { timeoutMs });
    const audioBytes = await audioToFile(items, values.output, config.format, (item) => (summary = item.summary));
    console.log(
      `wrote ${values.output}: ${audioBytes} bytes ${formatName} at ${summary.sampleRate} Hz\n` +
        `${summary.textPieces} pieces of text; first audio ${summary.textToFirstAudioMs.toFixed(1)} ms after the first piece`,
    );
  } finally {
    client.close();
  }
}

async function speak(argv) {
  const { values, text, timeoutMs } = parse(argv, AUDIO_OPTIONS);
  const { formatName, config } = speechConfig(values, '');
  const request = { model: values.model, messages: [{ role: 'user', content: text }], speech: config };
  const client = new VoxgateClient(values.server);
  try {
    let summary = null;
    const items = client.speak(request, { timeoutMs });
    const audioBytes = await audioToFile(items, values.output, config.format, (item) => {
      if (item.text !== undefined) process.stdout.write(item.text);
      else summary = item.summary;
    });
    console.log(
      `\nwrote ${values.output}: ${audioBytes} bytes ${formatName} at ${summary.sampleRate} Hz\n` +
        `first token ${summary.timeToFirstTokenMs.toFixed(1)} ms, first audio ${summary.timeToFirstAudioMs.toFixed(1)} ms` +
        ` in voxgate; finish ${summary.finishReason}; ${summary.characters} characters spoken`,
    );
  } finally {
    client.close();
  }
}

function finishLine(response) {
  const u = response.usage;
  return `finish ${response.finishReason}; usage ${u.inputTokens} in + ${u.outputTokens} out = ${u.totalTokens} tokens`;
}

function origin(response) {
  return `model ${response.model}, request ${response.requestId}, ${response.attempts} attempt(s)`;
}

async function main(argv) {
  const commands = { synth, generate, 'synth-stdin': synthStdin, speak };
  const command = commands[argv[0]];
  if (!command) {
    console.error(USAGE);
    return 2;
  }
  try {
    await command(argv.slice(1));
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`voxgate-node ${argv[0]}: ${error.message}\n${USAGE}`);
      return 2;
    }
    console.error(`voxgate-node ${argv[0]}: ${describeError(error)}`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
