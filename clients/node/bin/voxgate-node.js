#!/usr/bin/env node
'use strict';
/**
 * voxgate-node synth TEXT [-o out.wav] [--format wav|pcm|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
 * voxgate-node generate PROMPT [--system TEXT] [--model M] [--max-tokens N] [--no-stream] [--json]
 * Both take --server HOST:PORT (default 127.0.0.1:50051) and --timeout SECONDS (default 60), and for a
 * voxgate with TLS or caller keys --token KEY (default $VOXGATE_TOKEN), --tls, --ca-file FILE,
 * --cert FILE --key FILE (docs/security.md).
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
  token: { type: 'string' },
  tls: { type: 'boolean', default: false },
  'ca-file': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
};
const USAGE = `usage: voxgate-node synth TEXT [-o FILE] [--format pcm|wav|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
       voxgate-node generate PROMPT [--system TEXT] [--model M] [--max-tokens N] [--no-stream] [--json]
common options: --server HOST:PORT (default 127.0.0.1:50051), --timeout SECONDS (default 60),
  --token KEY (default $VOXGATE_TOKEN; a flag shows in ps), --tls, --ca-file FILE, --cert FILE --key FILE`;

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
  if (Boolean(values.cert) !== Boolean(values.key)) throw new UsageError('--cert and --key go together');
  return { values, text: positionals[0], timeoutMs: timeoutS * 1000 };
}

function connect(values) {
  return new VoxgateClient(values.server, {
    token: values.token ?? (process.env.VOXGATE_TOKEN || undefined),
    tls: values.tls,
    caFile: values['ca-file'],
    certFile: values.cert,
    keyFile: values.key,
  });
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
  const client = connect(values);
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
  const client = connect(values);
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

function finishLine(response) {
  const u = response.usage;
  return `finish ${response.finishReason}; usage ${u.inputTokens} in + ${u.outputTokens} out = ${u.totalTokens} tokens`;
}

function origin(response) {
  return `model ${response.model}, request ${response.requestId}, ${response.attempts} attempt(s)`;
}

async function main(argv) {
  const commands = { synth, generate };
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
