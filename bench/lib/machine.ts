/** Description of the machine a benchmark ran on (printed with every result: numbers mean little without it). */
import { cpus, loadavg, totalmem, hostname, release } from 'node:os';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  os: string;
  node: string;
  tools: Record<string, string>;
  hostname: string;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'not found';
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '';
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return m ? m[1] : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): MachineInfo {
  const c = cpus();
  return {
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memoryBytes: totalmem(),
    kernel: release(),
    os: osName(),
    node: process.version,
    tools: {
      nft: firstLine('nft', ['--version']),
      iptables: firstLine('iptables', ['--version']),
      ip: firstLine('ip', ['-V']),
    },
    hostname: hostname(),
  };
}

/** 1, 5 and 15 minute load averages. */
export function loadAverage(): [number, number, number] {
  const l = loadavg();
  return [l[0], l[1], l[2]];
}

export function machineLine(m: MachineInfo): string {
  return `${m.cpuModel}, ${m.cores} cores, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, kernel ${m.kernel}, ${m.os}, node ${m.node}`;
}
