#!/usr/bin/env node
'use strict';
/**
 * voxgate-node synth TEXT [-o out.wav] [--format wav|pcm|mp3|opus] [--sample-rate HZ] [--voice V] [--model M]
 *                        [--rate R] [--pitch P] [--volume N] [--timeout SECONDS (default 60)]
 * voxgate-node generate PROMPT [--stream] [--system TEXT] [--model M] [--max-tokens N] [--json]
 *                        [--timeout SECONDS (default 120)]
 * Both take --server HOST:PORT (default 127.0.0.1:50051). The commands, flags, output and exit
 * status are those of `voxgate synth` / `voxgate generate` (plus --json): 0 done, 1 the call
 * failed (the gRPC status is printed), 2 bad usage.
 */

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
};
const USAGES = {
  synth:
    `usage: ${PROG} synth TEXT [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}] [--sample-rate HZ]` +
    ' [--voice VOICE] [--model MODEL] [--rate RATE] [--pitch PITCH] [--volume VOLUME] [--timeout SECONDS]',
  generate:
    `usage: ${PROG} generate PROMPT [--stream] [--model MODEL] [--system SYSTEM] [--max-tokens N]` +
    ' [--server SERVER] [--timeout SECONDS] [--json]',
};
// Streaming text in (not in the conformance table: Python's `voxgate synth --stdin` is one flag).
USAGES['synth-stdin'] =
  `usage: ${PROG} synth-stdin [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}] [--sample-rate HZ]` +
  ' [--voice VOICE] [--model MODEL] [--timeout SECONDS]';
USAGES.speak =
  `usage: ${PROG} speak PROMPT [-o OUTPUT] [--server SERVER] [--format {mp3,opus,pcm,wav}] [--sample-rate HZ]` +
  ' [--voice VOICE] [--model MODEL] [--timeout SECONDS]';
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
  const timeout = numberOption(values, 'timeout', 'float') ?? timeoutS;
  return { values, text: positionals[0], timeoutMs: timeout * 1000 };
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
  const client = new VoxgateClient(values.server);
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
    },
    { what: 'prompt', timeoutS: 120 },
  );
  if (parsed.help) return out(USAGES.generate);
  const { values, text, timeoutMs } = parsed;
  const messages = values.system ? [{ role: 'system', content: values.system }] : [];
  messages.push({ role: 'user', content: text });
  const maxTokens = numberOption(values, 'max-tokens', 'int');
  const request = { model: values.model, messages, sampling: maxTokens === undefined ? {} : { maxTokens } };
  const client = new VoxgateClient(values.target ?? values.server);
  try {
    const started = performance.now();
    if (!values.stream) {
      const response = await client.generate(request, { timeoutMs });
      if (values.json) {
        out(JSON.stringify(response));
      } else {
        const answerMs = (performance.now() - started).toFixed(1);
        out(`${response.text}\n${finishLine(response)}\nanswer in ${answerMs} ms (client); ${origin(response)}`);
      }
      return 0;
    }
    let last = null;
    let firstTokenMs = null;
    try {
      for await (const response of client.generateStream(request, { timeoutMs })) {
        if (firstTokenMs === null && response.delta) firstTokenMs = performance.now() - started;
        // Each piece goes out the moment it arrives: one JSON line per message with --json.
        process.stdout.write(values.json ? `${JSON.stringify(response)}\n` : response.delta);
        last = response;
      }
    } catch (error) {
      if (!values.json && firstTokenMs !== null) process.stdout.write('\n'); // end the half-printed answer
      throw error;
    }
    if (!values.json) {
      out(
        `\n${finishLine(last)}\nfirst token ${(firstTokenMs ?? 0).toFixed(1)} ms (client), ` +
          `${last.timeToFirstTokenMs} ms in voxgate; ${origin(last)}`,
      );
    }
    return 0;
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
  const client = new VoxgateClient(values.server);
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
  const client = new VoxgateClient(values.server);
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
  return `finish ${response.finishReason}; usage ${u.inputTokens} in + ${u.outputTokens} out = ${u.totalTokens} tokens`;
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
