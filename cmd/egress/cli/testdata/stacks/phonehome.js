// The Node.js test program of egress --stacks: on each SIGUSR2 its function
// phoneHome connects to the vendor (argv[2], argv[3]) with a one-second
// timeout. Run it with --perf-basic-prof --interpreted-frames-native-stack
// so the kernel's stack of the connect() can be named.
//
// Node connects a host name in the callback of its lookup, and an IP
// literal on the next tick: either way phoneHome is off the stack by then.
// A synchronous lookup (as DNS-caching agents do for a cached name, here
// node_modules/cached-lookup) keeps the connect() inside phoneHome's call,
// which is what this test needs; its frame is a library's, not the app's.
'use strict';
const net = require('net');
const cachedLookup = require('cached-lookup');

const [ip, port] = [process.argv[2], Number(process.argv[3])];

function phoneHome() {
  const s = net.connect({
    host: 'updates.vendor.test',
    port,
    autoSelectFamily: false,
    lookup: cachedLookup(ip),
  });
  s.setTimeout(1000, () => { console.log('update check: no answer'); s.destroy(); });
  s.on('connect', () => { console.log('update check: answered'); s.destroy(); });
  s.on('error', (e) => console.log('update check:', e.code));
}

process.on('SIGUSR2', phoneHome);
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1 << 30);
console.log('ready');
