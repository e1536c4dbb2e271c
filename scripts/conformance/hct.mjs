// Helpers for scripts/conformance/http-cache-tests.sh.
//
//   node hct.mjs run PACKAGE_DIR BASE_URL PASS
//     Runs the suite as its cli.mjs does and prints the raw results, in
//     two passes. PASS "main" runs every test but those whose origin breaks
//     the connection on purpose: it drops it ("disconnect"), or sends a
//     Content-Length or Transfer-Encoding that does not frame its body.
//     PASS "apart" runs those, one at a time: each may cost the origin's
//     process (and with it the state of every test under way) or leave
//     bytes on a connection that another test's request would read.
//   node hct.mjs merge RAW.json ...
//     Merges the raw results of several passes.
//   node hct.mjs summarize PACKAGE_DIR RAW.json
//     Classifies the raw results of http-cache-tests (its cli.mjs output)
//     the way the suite's own report does (lib/display.mjs
//     determineTestResult, dependencies honoured) and prints one JSON
//     object: counts per class and, per test, its class, kind (required,
//     optimal, check) and what failed.
//   node hct.mjs check SUMMARY.json EXPECTED.json
//     Exits 1 when a test the expected file lists as passing no longer
//     passes, or when a required (MUST-level) test fails without being
//     listed as deliberate with a reason.
//   node hct.mjs expected SUMMARY.json [OLD_EXPECTED.json]
//     Prints a new expected file from a run, keeping the reasons of the old.
//   node hct.mjs table NAME=SUMMARY.json ...
//     Prints the counts of several runs side by side (Markdown).
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const read = f => JSON.parse(fs.readFileSync(f, 'utf8'))
const PASS = new Set(['pass', 'yes'])
// Results that mean "the cache did something wrong" (or the harness could
// not tell): for a required test, each must be listed as deliberate.
const FAILED = new Set(['fail', 'setup_fail', 'harness_fail', 'retry'])

const [cmd, ...args] = process.argv.slice(2)
switch (cmd) {
  case 'run': await run(...args); break
  case 'merge': console.log(JSON.stringify(Object.assign({}, ...args.map(read)), null, 2)); break
  case 'summarize': await summarize(...args); break
  case 'check': check(...args); break
  case 'expected': expected(...args); break
  case 'table': table(args); break
  default:
    console.error('usage: hct.mjs summarize|check|expected|table ...')
    process.exit(2)
}

async function suites (pkg) {
  const imp = p => import(pathToFileURL(path.join(path.resolve(pkg), p)).href)
  const tests = (await imp('tests/index.mjs')).default
  tests.push((await imp('tests/surrogate-control.mjs')).default) // as cli.mjs does
  return { imp, tests }
}

async function run (pkg, base, pass) {
  const { imp, tests } = await suites(pkg)
  const runner = await imp('client/runner.mjs')
  const fetch = (await import(pathToFileURL(path.join(path.resolve(pkg), '../node-fetch/lib/index.mjs')).href)).default
  const breaks = t => t.requests.some(r => r.disconnect ||
    (r.response_headers || []).some(h => /^(content-length|transfer-encoding)$/i.test(h[0])))
  const selected = tests.map(s => ({ ...s, tests: s.tests.filter(t => breaks(t) === (pass === 'apart')) }))
  await runner.runTests(selected, fetch, false, base, pass === 'apart' ? 1 : 100)
  console.log(JSON.stringify(runner.getResults(), null, 2))
}

async function summarize (pkg, rawFile) {
  const { imp, tests } = await suites(pkg)
  const display = await imp('lib/display.mjs')
  const raw = read(rawFile)
  const names = {
    '✅': 'pass', '⛔️': 'fail', '⚠️': 'optional_fail', Y: 'yes', N: 'no',
    '🔹': 'setup_fail', '⁉️': 'harness_fail', '⚪️': 'dependency_fail', '↻': 'retry', '-': 'untested'
  }
  const counts = {}
  const out = {}
  for (const suite of tests) {
    for (const t of suite.tests) {
      if (t.browser_only === true) continue
      const r = display.determineTestResult(tests, t.id, raw, true)
      const cls = names[r[2]] || r[2]
      counts[cls] = (counts[cls] || 0) + 1
      const entry = { result: cls, kind: t.kind || 'required', suite: suite.id }
      const v = raw[t.id]
      if (Array.isArray(v) && typeof v[1] === 'string') entry.detail = v[1]
      if (cls === 'dependency_fail') entry.depends_on = t.depends_on
      out[t.id] = entry
    }
  }
  console.log(JSON.stringify({ counts, tests: out }, null, 2))
}

function check (summaryFile, expectedFile) {
  const { tests } = read(summaryFile)
  const exp = read(expectedFile)
  const problems = []
  for (const id of exp.passing) {
    const t = tests[id]
    if (!t) problems.push(`${id}: expected to pass, not run`)
    else if (!PASS.has(t.result)) problems.push(`${id}: passed before, now ${t.result}${t.detail ? ': ' + t.detail : ''}`)
  }
  for (const [id, t] of Object.entries(tests)) {
    if (t.kind === 'required' && FAILED.has(t.result) && !(id in exp.deliberate)) {
      problems.push(`${id}: MUST-level ${t.result}${t.detail ? ': ' + t.detail : ''} (not listed as deliberate)`)
    }
  }
  const newly = Object.keys(tests).filter(id => PASS.has(tests[id].result) && !exp.passing.includes(id))
  if (newly.length) {
    console.log(`now passing, not yet in the expected file (update it with --update): ${newly.join(', ')}`)
  }
  if (problems.length) {
    console.log('http-cache-tests: regressions against ' + expectedFile + ':')
    for (const p of problems) console.log('  ' + p)
    process.exit(1)
  }
}

function expected (summaryFile, oldFile) {
  const { counts, tests } = read(summaryFile)
  const old = oldFile && fs.existsSync(oldFile) ? read(oldFile) : { deliberate: {} }
  // Entries listed before stay: a failure that depends on something this
  // run did not reach (a dependency) keeps its reason for when it does.
  const deliberate = { ...old.deliberate }
  for (const [id, t] of Object.entries(tests)) {
    if (t.kind === 'required' && FAILED.has(t.result)) {
      deliberate[id] = old.deliberate[id] || 'TODO: say why this failure is deliberate'
    }
  }
  const out = {
    suite: 'http-cache-tests@0.4.5',
    counts,
    passing: Object.keys(tests).filter(id => PASS.has(tests[id].result)).sort(),
    deliberate: Object.fromEntries(Object.entries(deliberate).sort())
  }
  console.log(JSON.stringify(out, null, 2))
}

function table (runs) {
  const classes = ['pass', 'yes', 'no', 'optional_fail', 'fail', 'setup_fail', 'harness_fail', 'retry', 'dependency_fail']
  const sums = runs.map(r => { const [name, f] = r.split('='); return [name, read(f)] })
  const mustFailed = s => Object.values(s.tests).filter(t => t.kind === 'required' && FAILED.has(t.result)).length
  console.log(`| result | ${sums.map(s => s[0]).join(' | ')} |`)
  console.log(`| --- | ${sums.map(() => '---:').join(' | ')} |`)
  for (const c of classes) console.log(`| ${c} | ${sums.map(s => s[1].counts[c] || 0).join(' | ')} |`)
  console.log(`| MUST-level failures | ${sums.map(s => mustFailed(s[1])).join(' | ')} |`)
}
