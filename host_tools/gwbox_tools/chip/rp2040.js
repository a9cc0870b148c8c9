// The emulated RP2040 for gwbox_tools.chip: rp2040js 1.4.1 (npm, pinned in package-lock.json)
// driven in lockstep by the Python side over stdin/stdout, one JSON object per line.
//
// Why a separate process: rp2040js is JavaScript; everything else (images, the modem line,
// the head office) is the project's Python. Python is the master of time: the chip runs only
// when told ("run until device time T"), so the rest of the world can live on the chip's own
// clock (docs/chip.md, "Time"). Device time is the simulation clock (125 MHz cycles), the same
// clock the chip's TIMER peripheral (time.ticks_ms) reads.
//
// What this file adds to rp2040js (docs/chip.md lists each):
//  * USB CDC: an OUT transfer is held until the host has bytes (a real host NAKs), instead of
//    rp2040js answering every arm with a zero-length packet (the "idle storm").
//  * UART: a 32-byte TX FIFO drained at the line's baud rate, with a TX interrupt raised only
//    when the FIFO falls to its trigger level after bytes were written (rp2040js raises TX on
//    every call, so machine.UART() never returns); RX bytes arrive paced at the baud rate and
//    a byte that finds the 32-byte RX FIFO full is lost and counted (an overrun).
//  * Flash: page program and sector/block erase through the SSI (the boot ROM's flash routines),
//    so littlefs writes persist; rp2040js only models reads.
//  * GPIO: an input nobody drives reads its pull (rp2040js reads 0 even with a pull-up).
//  * Watchdog: a reset re-boots the chip from its current flash, and is reported.
//
// Commands (stdin):  {"op":"run","until_us":N}  {"op":"usb","hex":".."}
//   {"op":"uart","n":0,"hex":".."}  {"op":"pin","n":2,"v":0|1|null}  {"op":"watch","pins":[3]}
//   {"op":"flash_out","path":".."}  {"op":"stats"}  {"op":"quit"}
// Events (stdout): {"ev":"at","us":T} after each run, {"ev":"usb","us":T,"hex":".."},
//   {"ev":"uart","n":0,"us":T,"hex":".."}, {"ev":"pin","n":3,"v":1,"us":T},
//   {"ev":"overrun","n":0,"us":T}, {"ev":"reset","us":T,"why":"watchdog"|"forced"},
//   {"ev":"stats",...} (overruns, rxDropped, resets, wdtResets, wdtEnabled, usbOut, usbIn), {"ev":"ready"}
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');

const modules = process.env.GWBOX_CHIP_NODE_MODULES;
const rp = require(modules ? path.join(modules, 'rp2040js') : 'rp2040js');

const CYCLE_NS = 8; // 125 MHz
const FLASH_SIZE = 2 * 1024 * 1024;

function out(obj) {
  outBuf.push(JSON.stringify(obj));
}
let outBuf = [];
function flushOut() {
  if (outBuf.length) {
    process.stdout.write(outBuf.join('\n') + '\n');
    outBuf = [];
  }
}

function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

// ---------------------------------------------------------------- options
const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
const bootrom = fs.readFileSync(args.bootrom);
const flashImage = fs.readFileSync(args.flash);

// ---------------------------------------------------------------- state across resets
const stats = { overruns: [0, 0], rxDropped: [0, 0], resets: 0, wdtResets: 0, usbOut: 0, usbIn: 0 };
const usbHostQueue = []; // host -> device bytes not yet taken by the chip
const uartLine = [[], []]; // bytes on each UART's RX line, not yet arrived
const pinDrive = {}; // GPIO -> 0/1 driven by the host; absent: the pin's pull decides
let watched = new Set();
let flash = new Uint8Array(FLASH_SIZE);
flash.set(flashImage.subarray(0, FLASH_SIZE));
let usOffset = 0; // device time before the current boot (the clock restarts at a reset)

let mcu, clock, cdc, pendingRead, uartState, resetPending;

function nowUs() {
  return usOffset + clock.nanos / 1000;
}

// ---------------------------------------------------------------- boot
function boot() {
  clock = new rp.SimulationClockClass();
  mcu = new rp.RP2040(clock);
  mcu.logger = new rp.ConsoleLogger(rp.LogLevel.Error, true);
  mcu.loadBootrom(new Uint32Array(bootrom.buffer, bootrom.byteOffset, bootrom.length / 4));
  mcu.flash.set(flash); // loadBootrom resets the chip, which erases its flash array
  flash = mcu.flash.subarray(0, FLASH_SIZE); // one buffer from now on: writes land in it
  // Start at the image's second-stage boot loader, as rp2040js's own MicroPython demo does:
  // the boot ROM's flash boot falls back to USB mass storage under rp2040js. The boot ROM
  // stays mapped at 0 for the routines the SDK calls (flash, memcpy, float).
  mcu.core.PC = 0x10000000;
  resetPending = null;
  setupUsb();
  setupUarts();
  setupFlashWrites();
  setupGpio();
  setupWatchdog();
  setupChipReset();
}

// VREG_AND_CHIP_RESET: rp2040js leaves it unimplemented (reads 0xffffffff), and the boot ROM
// then finds CHIP_RESET.PSM_RESTART_FLAG set and halts for a debugger. Registers read back
// what was written; CHIP_RESET reads 0 (a power-on reset).
function setupChipReset() {
  const regs = new Uint32Array(3);
  regs[0] = 0xb1; // VREG: enabled, 1.10 V
  regs[1] = 0x8; // BOD: enabled
  regs[2] = survivors ? 0 : 1 << 8; // CHIP_RESET.HAD_POR after power-on, not after the watchdog
  const p = new rp.BasePeripheral(mcu, 'VREG_AND_CHIP_RESET_BASE');
  p.readUint32 = (offset) => (offset < 12 ? regs[offset >> 2] : 0);
  p.writeUint32 = (offset, value) => {
    if (offset < 8) regs[offset >> 2] = value;
  };
  mcu.peripherals[0x40064] = p;
}

// ---------------------------------------------------------------- USB CDC (the console)
function setupUsb() {
  cdc = new rp.USBCDC(mcu.usbCtrl);
  pendingRead = null;
  cdc.onDeviceConnected = () => {
    out({ ev: 'usb_up', us: Math.round(nowUs()) });
    serveUsb();
  };
  cdc.onSerialData = (buffer) => {
    stats.usbOut += buffer.length;
    out({ ev: 'usb', us: Math.round(nowUs()), hex: hex(buffer) });
  };
  // Hold an armed OUT endpoint until the host has bytes, as a real host NAKs.
  mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
    if (endpoint !== cdc.outEndpoint) {
      return; // as rp2040js's USBCDC: only the CDC data endpoint is served
    }
    pendingRead = { endpoint, size };
    serveUsb();
  };
}

function serveUsb() {
  if (!pendingRead || !usbHostQueue.length || !cdc.initialized) {
    return;
  }
  const n = Math.min(pendingRead.size, usbHostQueue.length);
  const chunk = Uint8Array.from(usbHostQueue.splice(0, n));
  stats.usbIn += n;
  const { endpoint } = pendingRead;
  pendingRead = null;
  mcu.usbCtrl.endpointReadDone(endpoint, chunk);
}

// ---------------------------------------------------------------- UARTs
// PL011 register offsets and bits used here
const UARTDR = 0x0, UARTFR = 0x18, UARTIFLS = 0x34, UARTIMSC = 0x38, UARTICR = 0x44;
const FR_TXFE = 1 << 7, FR_RXFF = 1 << 6, FR_TXFF = 1 << 5, FR_RXFE = 1 << 4, FR_BUSY = 1 << 3;
const INT_TX = 1 << 5, INT_RX = 1 << 4;
const TX_FIFO = 32;
const LEVELS = [4, 8, 16, 24, 28]; // IFLS trigger levels, eighths of 32

function setupUarts() {
  uartState = [0, 1].map((n) => setupUart(n));
}

function byteNanos(u) {
  const baud = Number.isFinite(u.baudRate) && u.baudRate > 0 ? u.baudRate : 115200;
  return 1e10 / baud; // 10 bits a character (8N1)
}

function setupUart(n) {
  const u = mcu.uart[n];
  const st = { txFifo: [], shifting: false, txLine: [], ifls: 0x12 };
  st.txAlarm = clock.createAlarm(() => {
    // the byte in the shift register has left; the next FIFO byte starts
    const before = st.txFifo.length;
    if (before) {
      const b = st.txFifo.shift();
      st.txLine.push(b);
      const level = LEVELS[(st.ifls & 7) < 5 ? st.ifls & 7 : 2];
      if (before > level && st.txFifo.length <= level) {
        u.interruptStatus |= INT_TX;
      }
      st.txAlarm.schedule(byteNanos(u));
    } else {
      st.shifting = false;
      u.interruptStatus |= INT_TX; // FIFO and shift register empty
    }
    updateIrq(u);
  });
  st.rxAlarm = clock.createAlarm(() => {
    const line = uartLine[n];
    if (!line.length) {
      st.rxBusy = false;
      return;
    }
    const b = line.shift();
    if (!(u.enabled && u.rxEnabled)) {
      stats.rxDropped[n]++;
    } else if (u.rxFIFO.full) {
      stats.overruns[n]++;
      out({ ev: 'overrun', n, us: Math.round(nowUs()) });
    } else {
      u.feedByte(b);
    }
    st.rxAlarm.schedule(byteNanos(u));
  });
  st.rxBusy = false;
  // TX raised only by the FIFO model above; RX as rp2040js does (on every byte received).
  u.checkInterrupts = () => updateIrq(u);
  const flagsGetter = () =>
    (u.rxFIFO.full ? FR_RXFF : 0) |
    (u.rxFIFO.empty ? FR_RXFE : 0) |
    (st.txFifo.length >= TX_FIFO ? FR_TXFF : 0) |
    (st.txFifo.length === 0 ? FR_TXFE : 0) |
    (st.shifting ? FR_BUSY : 0);
  const baseRead = u.readUint32.bind(u);
  u.readUint32 = (offset) => {
    if (offset === UARTFR) return flagsGetter();
    if (offset === UARTIFLS) return st.ifls;
    return baseRead(offset);
  };
  const baseWrite = u.writeUint32.bind(u);
  u.writeUint32 = (offset, value) => {
    if (offset === UARTDR) {
      if (st.txFifo.length < TX_FIFO) {
        st.txFifo.push(value & 0xff);
        const level = LEVELS[(st.ifls & 7) < 5 ? st.ifls & 7 : 2];
        if (st.txFifo.length > level) {
          u.interruptStatus &= ~INT_TX;
        }
      }
      if (!st.shifting) {
        st.shifting = true;
        st.txAlarm.schedule(byteNanos(u));
      }
      updateIrq(u);
      return;
    }
    if (offset === UARTIFLS) {
      st.ifls = value & 0x3f;
      return;
    }
    if (offset === UARTICR) {
      u.interruptStatus &= ~u.rawWriteValue;
      updateIrq(u);
      return;
    }
    baseWrite(offset, value);
    if (offset === UARTIMSC) updateIrq(u);
  };
  return st;
}

function updateIrq(u) {
  mcu.setInterrupt(u.irq, !!(u.interruptStatus & u.interruptMask));
}

function startRx(n) {
  const st = uartState[n];
  if (!st.rxBusy && uartLine[n].length) {
    st.rxBusy = true;
    st.rxAlarm.schedule(byteNanos(mcu.uart[n]));
  }
}

function drainTx() {
  for (let n = 0; n < 2; n++) {
    const st = uartState[n];
    if (st.txLine.length) {
      out({ ev: 'uart', n, us: Math.round(nowUs()), hex: hex(st.txLine) });
      st.txLine = [];
    }
  }
}

// ---------------------------------------------------------------- flash writes
// The boot ROM's flash_range_program / flash_range_erase drive the SSI with chip select
// forced through IO_QSPI's SS override; a command is the bytes written to SSI DR0 while it
// is forced low, carried out when it is released.
const QSPI_SS_CTRL = 0x0c;
const SSI_SSIENR = 0x08, SSI_TXFLR = 0x20, SSI_RXFLR = 0x24, SSI_SR = 0x28, SSI_DR0 = 0x60;
const SR_TFNF = 2, SR_TFE = 4, SR_RFNE = 8;

function setupFlashWrites() {
  const qspiCtrl = new Uint32Array(12);
  let csLow = false;
  let cmd = [];
  const rx = [];
  let writeEnabled = false;
  const ioqspi = new rp.BasePeripheral(mcu, 'IO_QSPI_BASE');
  // STATUS registers read all ones, as rp2040js answers them: the boot ROM reads the SS pad
  // high there (BOOTSEL released) and boots from flash.
  ioqspi.readUint32 = (offset) => (offset < 0x30 && offset & 4 ? qspiCtrl[offset >> 2] : 0xffffffff);
  ioqspi.writeUint32 = (offset, value) => {
    if (offset >= 0x30) return;
    qspiCtrl[offset >> 2] = value;
    if (offset === QSPI_SS_CTRL) {
      const low = ((value >> 8) & 3) === 2;
      if (csLow && !low) {
        execute(cmd);
        cmd = [];
      }
      csLow = low;
    }
  };
  mcu.peripherals[0x40018] = ioqspi;

  function execute(c) {
    if (!c.length) return;
    const op = c[0];
    const addr = ((c[1] << 16) | (c[2] << 8) | c[3]) & (FLASH_SIZE - 1);
    if (op === 0x06) writeEnabled = true;
    else if (op === 0x04) writeEnabled = false;
    else if (op === 0x02 && writeEnabled) {
      const page = addr & ~0xff;
      for (let i = 4; i < c.length; i++) {
        const a = page | ((addr + i - 4) & 0xff); // wraps within the 256-byte page
        flash[a] &= c[i];
      }
      writeEnabled = false;
    } else if ((op === 0x20 || op === 0x52 || op === 0xd8) && writeEnabled) {
      const size = op === 0x20 ? 4096 : op === 0x52 ? 32768 : 65536;
      const base = addr & ~(size - 1);
      flash.fill(0xff, base, base + size);
      writeEnabled = false;
    }
  }

  const ssi = mcu.peripherals[0x18000];
  const ssiRead = ssi.readUint32.bind(ssi);
  const ssiWrite = ssi.writeUint32.bind(ssi);
  // The FIFOs are modelled: every byte written shifts one byte in (RXFLR counts them), and
  // TX empties at once. The boot ROM clocks bytes with chip select released too.
  ssi.readUint32 = (offset) => {
    if (offset === SSI_DR0) return rx.length ? rx.shift() : 0;
    if (offset === SSI_RXFLR) return rx.length;
    if (offset === SSI_TXFLR) return 0;
    if (offset === SSI_SR) return SR_TFNF | SR_TFE | (rx.length ? SR_RFNE : 0);
    return ssiRead(offset);
  };
  ssi.writeUint32 = (offset, value) => {
    if (offset === SSI_DR0) {
      // what the flash shifts out meanwhile: data for a read, the JEDEC ID, else 0 (a
      // status register of 0: not busy)
      let resp = 0;
      if (csLow) {
        cmd.push(value & 0xff);
        const op = cmd[0];
        if (op === 0x03 && cmd.length > 4) {
          const a = (((cmd[1] << 16) | (cmd[2] << 8) | cmd[3]) + cmd.length - 5) & (FLASH_SIZE - 1);
          resp = flash[a];
        } else if (op === 0x9f) {
          resp = [0, 0xef, 0x40, 0x15][cmd.length - 1] || 0;
        }
      }
      rx.push(resp);
      if (rx.length > 16) rx.shift(); // the RX FIFO holds 16
      return;
    }
    if (offset === SSI_SSIENR) rx.length = 0; // enabling or disabling the SSI clears its FIFOs
    ssiWrite(offset, value);
  };
}

// ---------------------------------------------------------------- GPIO
function setupGpio() {
  // An input the host does not drive reads its pull (a pull-up reads 1).
  for (const pin of mcu.gpio) {
    Object.defineProperty(pin, 'inputValue', {
      get() {
        if (pin.outputEnable) return pin.outputValue;
        const v = pin.index in pinDrive ? !!pinDrive[pin.index] : pin.pullupEnabled && !pin.pulldownEnabled;
        const ov = pin.inputOverride;
        return ov === 0 ? v && pin.inputEnable : ov === 1 ? !(v && pin.inputEnable) : ov === 3;
      },
    });
    pin.addListener(() => {
      if (watched.has(pin.index)) {
        out({ ev: 'pin', n: pin.index, v: pin.outputEnable ? (pin.outputValue ? 1 : 0) : null, us: Math.round(nowUs()) });
      }
    });
  }
  for (const n of Object.keys(pinDrive)) {
    mcu.gpio[n].setInputValue(!!pinDrive[n]);
  }
  // The BOOTSEL button is released: the QSPI chip-select pin reads high. rp2040js reads it
  // low (pressed) even when driven high, because its QSPI pads come up without input enable;
  // rp2.bootsel_button() reads it through SIO GPIO_HI_IN, which asks this getter.
  Object.defineProperty(mcu.qspi[1], 'inputValue', { get: () => true });
}

// ---------------------------------------------------------------- watchdog
let survivors = null; // what a watchdog reset keeps: the reason and the scratch registers

function setupWatchdog() {
  const wd = mcu.peripherals[0x40058];
  if (survivors) {
    wd.reason = survivors.reason;
    wd.scratchData.set(survivors.scratch);
  }
  wd.onWatchdogTrigger = () => {
    // Reboot after this instruction, from the flash as it is now. The timer stops here:
    // rp2040js's periodic alarm would fire again at once, forever, at a count of 0.
    resetPending = wd.reason === 1 ? 'watchdog' : 'forced';
    wd.alarm.enable = false;
    wd.timer.enable = false;
  };
}

function doReset(why) {
  stats.resets++;
  if (why === 'watchdog') stats.wdtResets++;
  out({ ev: 'reset', us: Math.round(nowUs()), why });
  usOffset = nowUs();
  const wd = mcu.peripherals[0x40058];
  survivors = { reason: wd.reason, scratch: Uint32Array.from(wd.scratchData) };
  const saved = Uint8Array.from(flash);
  flash = saved;
  boot();
}

// ---------------------------------------------------------------- running
function runUntil(targetUs) {
  let target = (targetUs - usOffset) * 1000;
  while (clock.nanos < target) {
    if (resetPending) {
      doReset(resetPending);
      target = (targetUs - usOffset) * 1000;
      continue;
    }
    if (mcu.core.waiting) {
      const dt = clock.nanosToNextAlarm;
      clock.tick(dt > 0 ? Math.min(dt, target - clock.nanos) : target - clock.nanos);
    } else {
      clock.tick(mcu.core.executeInstruction() * CYCLE_NS);
    }
  }
  if (resetPending) doReset(resetPending);
  drainTx();
}

function handle(msg) {
  switch (msg.op) {
    case 'run':
      runUntil(msg.until_us);
      out({ ev: 'at', us: Math.round(nowUs()) });
      break;
    case 'usb':
      usbHostQueue.push(...Buffer.from(msg.hex, 'hex'));
      serveUsb();
      break;
    case 'uart':
      uartLine[msg.n].push(...Buffer.from(msg.hex, 'hex'));
      startRx(msg.n);
      break;
    case 'pin':
      if (msg.v === null || msg.v === undefined) delete pinDrive[msg.n];
      else pinDrive[msg.n] = msg.v ? 1 : 0;
      mcu.gpio[msg.n].setInputValue(msg.n in pinDrive ? !!pinDrive[msg.n] : false);
      break;
    case 'watch':
      watched = new Set(msg.pins);
      break;
    case 'flash_out':
      fs.writeFileSync(msg.path, flash);
      out({ ev: 'flash_out', path: msg.path });
      break;
    case 'stats':
      // wdtEnabled: whether the watchdog counts down now (the firmware started it)
      out(Object.assign({ ev: 'stats', us: Math.round(nowUs()), wdtEnabled: mcu.peripherals[0x40058].enable }, stats));
      break;
    case 'quit':
      flushOut();
      process.exit(0);
      break;
    default:
      out({ ev: 'error', error: 'unknown op ' + msg.op });
  }
}

// rp2040js exports the simulation clock only from its deep path.
rp.SimulationClockClass = require(
  modules ? path.join(modules, 'rp2040js/dist/cjs/clock/simulation-clock.js') : 'rp2040js/dist/cjs/clock/simulation-clock.js',
).SimulationClock;

boot();
out({ ev: 'ready' });
flushOut();

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    out({ ev: 'error', error: 'bad json: ' + e.message });
    flushOut();
    return;
  }
  handle(msg);
  flushOut();
});
rl.on('close', () => process.exit(0));
