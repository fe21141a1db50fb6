#!/usr/bin/env node
'use strict';
/**
 * voxgate-node synth TEXT [-o out.wav] [--format wav|pcm|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
 *                        [--rate R] [--pitch P] [--volume N] [--timeout SECONDS (default 60)]
 * voxgate-node generate PROMPT [--stream] [--system TEXT] [--model M] [--max-tokens N] [--json]
 *                        [--image FILE_OR_URL]... [--think] [--tool NAME[=JSON_SCHEMA]]... [--tool-choice C]
 *                        [--timeout SECONDS (default 120)]
 * Both take --server HOST:PORT (default 127.0.0.1:50051), and for a voxgate with TLS or caller keys
 * --token KEY (default $VOXGATE_TOKEN), --tls, --ca-file FILE, --cert FILE --key FILE (docs/security.md).
 * The commands, flags, output and exit
 * status are those of `voxgate synth` / `voxgate generate` (plus --json): 0 done, 1 the call
 * failed (the gRPC status is printed), 2 bad usage.
 */

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { VoxgateClient, describeError } = require('../lib/voxgate');

const PROG = 'voxgate-node';
const FORMATS = { pcm: 'AUDIO_FORMAT_PCM', wav: 'AUDIO_FORMAT_WAV', mp3: 'AUDIO_FORMAT_MP3', opus: 'AUDIO_FORMAT_OPUS' };
const COMMON = {
  server: { type: 'string', default: '127.0.0.1:50051' },
  timeout: { type: 'string' },
  model: { type: 'string', default: '' },
  help: { type: 'boolean', short: 'h', default: false },
  token: { type: 'string' },
  tls: { type: 'boolean', default: false },
  'ca-file': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
};
const CONNECTION_USAGE = ' [--token KEY] [--tls] [--ca-file FILE] [--cert FILE] [--key FILE]';
const USAGES = {
  synth:
    `usage: ${PROG} synth TEXT [-o FILE] [--server HOST:PORT] [--format {mp3,opus,pcm,wav}] [--sample-rate HZ]` +
    ' [--voice VOICE] [--model MODEL] [--rate FACTOR] [--pitch FACTOR] [--volume N] [--timeout SECONDS]' +
    CONNECTION_USAGE,
  generate:
    `usage: ${PROG} generate PROMPT [--stream] [--model MODEL] [--system TEXT] [--max-tokens N]` +
    ' [--image FILE_OR_URL] [--think] [--tool NAME[=JSON_SCHEMA]] [--tool-choice CHOICE]' +
    ' [--server HOST:PORT] [--timeout SECONDS] [--json]' +
    CONNECTION_USAGE,
};
// Streaming text in (not in the conformance table: Python's `voxgate synth --stdin` is one flag).
USAGES['synth-stdin'] =
  `usage: ${PROG} synth-stdin [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}] [--sample-rate HZ]` +
  ' [--voice VOICE] [--model MODEL] [--timeout SECONDS]' +
  CONNECTION_USAGE;
USAGES.speak =
  `usage: ${PROG} speak PROMPT [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}] [--sample-rate HZ]` +
  ' [--voice VOICE] [--model MODEL] [--timeout SECONDS]' +
  CONNECTION_USAGE;
const USAGE = `${USAGES.synth}\n${USAGES.generate.replace('usage:', '      ')}`;

/** Bad command-line input: exit status 2, the command's usage first (as argparse does). */
class UsageError extends Error {}

/** `text` quoted as Python's repr() quotes it, so messages match `voxgate synth`'s. */
function pythonRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  return quote + text.replace(/\\/g, '\\\\').replaceAll(quote, `\\${quote}`) + quote;
}

function parse(argv, options, { what, timeoutS }) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON, ...options }, allowPositionals: true });
  } catch (error) {
    throw new UsageError(error.message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  if (positionals.length === 0) throw new UsageError(`the following arguments are required: ${what}`);
  if (positionals.length > 1) throw new UsageError(`unrecognized arguments: ${positionals.slice(1).join(' ')}`);
  if (Boolean(values.cert) !== Boolean(values.key)) throw new UsageError('--cert and --key go together');
  const timeout = numberOption(values, 'timeout', 'float') ?? timeoutS;
  return { values, text: positionals[0], timeoutMs: timeout * 1000 };
}

/** A client for `server`, with the connection options (docs/security.md). */
function connect(values, server) {
  return new VoxgateClient(server, {
    token: values.token ?? (process.env.VOXGATE_TOKEN || undefined),
    tls: values.tls,
    caFile: values['ca-file'],
    certFile: values.cert,
    keyFile: values.key,
  });
}

/** The option as a number, undefined if not given; `kind` 'int' or 'float', as argparse's types. */
function numberOption(values, name, kind) {
  if (values[name] === undefined) return undefined;
  const number = Number(values[name]);
  if (values[name].trim() === '' || !Number.isFinite(number) || (kind === 'int' && !Number.isInteger(number))) {
    throw new UsageError(`argument --${name}: invalid ${kind} value: '${values[name]}'`);
  }
  return number;
}

async function synth(argv, out) {
  const parsed = parse(
    argv,
    {
      output: { type: 'string', short: 'o', default: 'out.wav' },
      format: { type: 'string' },
      'sample-rate': { type: 'string' },
      voice: { type: 'string', default: '' },
      rate: { type: 'string' },
      pitch: { type: 'string' },
      volume: { type: 'string' },
    },
    { what: 'text', timeoutS: 60 },
  );
  if (parsed.help) return out(USAGES.synth);
  const { values, text, timeoutMs } = parsed;
  if (values.format !== undefined && !(values.format in FORMATS)) {
    throw new UsageError(`argument --format: invalid choice: '${values.format}' (choose from 'mp3', 'opus', 'pcm', 'wav')`);
  }
  const request = {
    text,
    model: values.model,
    voice: values.voice,
    sampleRate: numberOption(values, 'sample-rate', 'int') ?? 0,
    rate: numberOption(values, 'rate', 'float'),
    pitch: numberOption(values, 'pitch', 'float'),
    volume: numberOption(values, 'volume', 'int'),
  };
  const formatName = values.format ?? (path.extname(values.output).slice(1).toLowerCase() || 'wav');
  if (!(formatName in FORMATS)) {
    console.error(`${PROG} synth: cannot tell the format from ${pythonRepr(values.output)}; pass --format`);
    return 2;
  }
  request.format = FORMATS[formatName];
  const client = connect(values, values.server);
  try {
    const result = await client.synthesizeToFile(request, values.output, { timeoutMs });
    const s = result.summary;
    out(
      `wrote ${values.output}: ${result.audioBytes} bytes ${formatName} at ${s.sampleRate} Hz\n` +
        `first packet ${result.clientFirstPacketMs.toFixed(1)} ms (client), ` +
        `${s.firstPacketDelayMs.toFixed(1)} ms in voxgate, ${s.upstreamFirstPacketDelayMs.toFixed(1)} ms upstream\n` +
        `connection ${s.connectionReused ? 'reused' : 'new'} (age ${(s.connectionAgeMs / 1000).toFixed(1)} s, ` +
        `pool wait ${s.poolWaitMs.toFixed(1)} ms), ` +
        `task ${s.taskId}, ${s.characters} characters, ${s.attempts} attempt(s)`,
    );
    return 0;
  } finally {
    client.close();
  }
}

async function generate(argv, out) {
  const parsed = parse(
    argv,
    {
      target: { type: 'string' }, // `voxgate generate` takes --target as another name of --server
      system: { type: 'string', default: '' },
      'max-tokens': { type: 'string' },
      stream: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      image: { type: 'string', multiple: true, default: [] },
      think: { type: 'boolean', default: false },
      tool: { type: 'string', multiple: true, default: [] },
      'tool-choice': { type: 'string', default: '' },
    },
    { what: 'prompt', timeoutS: 120 },
  );
  if (parsed.help) return out(USAGES.generate);
  const { values, text, timeoutMs } = parsed;
  const messages = values.system ? [{ role: 'system', content: values.system }] : [];
  const maxTokens = numberOption(values, 'max-tokens', 'int');
  try {
    messages.push(userMessage(text, values.image));
  } catch (error) {
    if (!(error instanceof ImageError)) throw error;
    console.error(`${PROG} generate: --image: ${error.message}`);
    return 2;
  }
  const sampling = maxTokens === undefined ? {} : { maxTokens };
  if (values.think) sampling.enableThinking = true;
  const tools = values.tool.map((spec) => {
    const [name, ...schema] = spec.split('='); // the schema may hold '=' itself
    return { name, parameters: schema.join('=') };
  });
  const request = { model: values.model, messages, sampling, tools, toolChoice: values['tool-choice'] };
  const client = connect(values, values.target ?? values.server);
  try {
    const started = performance.now();
    if (!values.stream) {
      const response = await client.generate(request, { timeoutMs });
      if (values.json) {
        out(JSON.stringify(response));
      } else {
        const answerMs = (performance.now() - started).toFixed(1);
        if (response.reasoning) out(THINKING_START + response.reasoning + THINKING_END);
        out(
          `${response.text}${toolCallLines(response)}\n${finishLine(response)}\n` +
            `answer in ${answerMs} ms (client); ${origin(response)}`,
        );
      }
      return 0;
    }
    let last = null;
    let firstTokenMs = null;
    let thinking = false; // reasoning printed, its line not ended yet
    try {
      for await (const response of client.generateStream(request, { timeoutMs })) {
        last = response;
        if (firstTokenMs === null && (response.delta || response.reasoningDelta)) {
          firstTokenMs = performance.now() - started;
        }
        // Each piece goes out the moment it arrives: one JSON line per message with --json.
        if (values.json) {
          process.stdout.write(`${JSON.stringify(response)}\n`);
          continue;
        }
        if (response.reasoningDelta) {
          if (!thinking) process.stdout.write(THINKING_START);
          thinking = true;
          process.stdout.write(response.reasoningDelta);
        }
        if (response.delta) {
          if (thinking) process.stdout.write(`${THINKING_END}\n`);
          thinking = false;
          process.stdout.write(response.delta);
        }
      }
    } catch (error) {
      // End the half-printed answer on stdout; the error is stderr's first line.
      if (!values.json && firstTokenMs !== null) process.stdout.write(`${thinking ? THINKING_END : ''}\n`);
      throw error;
    }
    if (!values.json) {
      if (thinking) process.stdout.write(THINKING_END);
      const firstAnswer = last.timeToFirstAnswerTokenMs;
      const answer = [0, last.timeToFirstTokenMs].includes(firstAnswer)
        ? ''
        : `, first answer token ${firstAnswer} ms in voxgate`;
      out(
        `${toolCallLines(last)}\n${finishLine(last)}\nfirst token ${(firstTokenMs ?? 0).toFixed(1)} ms (client), ` +
          `${last.timeToFirstTokenMs} ms in voxgate${answer}; ${origin(last)}`,
      );
    }
    return 0;
  } finally {
    client.close();
  }
}

// Reasoning is prefixed (and dimmed on a terminal), so it never reads as the answer.
const DIM = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
const THINKING_START = `${DIM ? '\x1b[2m' : ''}thinking: `;
const THINKING_END = DIM ? '\x1b[0m' : '';

/** The prompt, after its images: files are read and sent inline, URLs as they are. */
function userMessage(text, images) {
  if (images.length === 0) return { role: 'user', content: text };
  const parts = images.map((image) =>
    /^(https?:\/\/|oss:\/\/|data:)/.test(image) ? { imageUrl: image } : { image: readImage(image) },
  );
  parts.push({ text });
  return { role: 'user', parts };
}

/** Bad --image: exit status 2, the reason alone (as `voxgate generate` prints it, no usage). */
class ImageError extends Error {}

function readImage(file) {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new ImageError(describeFileError(error, file));
  }
}

/** Python's (the C library's) words for the errors reading a file may meet; libuv words some differently. */
const OS_ERRORS = {
  ENOENT: [2, 'No such file or directory'],
  EACCES: [13, 'Permission denied'],
  EISDIR: [21, 'Is a directory'],
};

/** A failed read as Python's OSError prints it: "[Errno 2] No such file or directory: 'a.png'". */
function describeFileError(error, file) {
  if (!(error.code in OS_ERRORS)) return error.message;
  const [errno, reason] = OS_ERRORS[error.code];
  return `[Errno ${errno}] ${reason}: ${pythonRepr(file)}`;
}

function toolCallLines(response) {
  return response.toolCalls.map((call) => `\ntool call: ${call.name}(${call.arguments}) id ${call.id}`).join('');
}

const AUDIO_OPTIONS = {
  output: { type: 'string', short: 'o', default: 'out.wav' },
  format: { type: 'string' },
  'sample-rate': { type: 'string' },
  voice: { type: 'string', default: '' },
};

function speechConfig(values, model) {
  const formatName = values.format ?? (path.extname(values.output).slice(1).toLowerCase() || 'wav');
  if (!(formatName in FORMATS)) throw new UsageError(`cannot tell the format from ${pythonRepr(values.output)}; pass --format`);
  const sampleRate = numberOption(values, 'sample-rate', 'int') ?? 0;
  return { formatName, config: { model, voice: values.voice, format: FORMATS[formatName], sampleRate } };
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
  } catch (error) {
    await file.close();
    await fs.promises.rm(filePath, { force: true }); // a short clip never stays behind looking whole
    throw error;
  }
  await file.close();
  return audioBytes;
}

async function synthStdin(argv, out) {
  // No text argument: standard input is the text ('-' stands in for it in the parser).
  const parsed = parse(['-', ...argv], AUDIO_OPTIONS, { what: 'text', timeoutS: 60 });
  if (parsed.help) return out(USAGES['synth-stdin']);
  const { values, timeoutMs } = parsed;
  const { formatName, config } = speechConfig(values, values.model);
  process.stdin.setEncoding('utf8'); // each chunk read is one piece, as the writer flushed it
  const client = connect(values, values.server);
  try {
    let summary = null;
    const items = client.synthesizeTextStream(config, process.stdin, { timeoutMs });
    const audioBytes = await audioToFile(items, values.output, config.format, (item) => (summary = item.summary));
    return out(
      `wrote ${values.output}: ${audioBytes} bytes ${formatName} at ${summary.sampleRate} Hz\n` +
        `${summary.textPieces} pieces of text; first audio ${summary.textToFirstAudioMs.toFixed(1)} ms after the first piece`,
    );
  } finally {
    client.close();
  }
}

async function speak(argv, out) {
  const parsed = parse(argv, AUDIO_OPTIONS, { what: 'prompt', timeoutS: 120 });
  if (parsed.help) return out(USAGES.speak);
  const { values, text, timeoutMs } = parsed;
  const { formatName, config } = speechConfig(values, '');
  const request = { model: values.model, messages: [{ role: 'user', content: text }], speech: config };
  const client = connect(values, values.server);
  try {
    let summary = null;
    const items = client.speak(request, { timeoutMs });
    const audioBytes = await audioToFile(items, values.output, config.format, (item) => {
      if (item.text !== undefined) process.stdout.write(item.text);
      else summary = item.summary;
    });
    return out(
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
  const reasoning = u.reasoningTokens ? ` (${u.reasoningTokens} reasoning)` : '';
  return (
    `finish ${response.finishReason}; ` +
    `usage ${u.inputTokens} in + ${u.outputTokens}${reasoning} out = ${u.totalTokens} tokens`
  );
}

function origin(response) {
  return `model ${response.model}, request ${response.requestId}, ${response.attempts} attempt(s)`;
}

async function main(argv) {
  const commands = { synth, generate, 'synth-stdin': synthStdin, speak };
  const out = (text) => {
    console.log(text);
    return 0;
  };
  if (argv[0] === '-h' || argv[0] === '--help') return out(USAGE);
  const command = commands[argv[0]];
  if (!command) {
    console.error(USAGE);
    return 2;
  }
  try {
    return await command(argv.slice(1), out);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${USAGES[argv[0]]}\n${PROG} ${argv[0]}: error: ${error.message}`);
      return 2;
    }
    console.error(`${PROG} ${argv[0]}: ${describeError(error)}`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
