"""Read a JUnit XML report on stdin with junitparser (Debian's
python3-junitparser, a real JUnit consumer) and print what it sees: one
line "tests T failures F errors E" per suite, then "FAIL name type" for each
failed case. Exits 1 when the counts a consumer reads disagree with the
cases, or a case's time exceeds its suite's."""
import sys

from junitparser import Failure, JUnitXml

xml = JUnitXml.fromstring(sys.stdin.read())
suites = [xml] if xml._tag == "testsuite" else list(xml)
bad = False
for suite in suites:
    cases = list(suite)
    failed = [c for c in cases for r in c.result if isinstance(r, Failure)]
    print(f"tests {suite.tests} failures {suite.failures} errors {suite.errors}")
    if suite.tests != len(cases) or suite.failures != len(failed):
        print(f"counts disagree: {len(cases)} cases, {len(failed)} failed", file=sys.stderr)
        bad = True
    for c in cases:
        if c.time > suite.time + 0.0005:
            print(f"case {c.name} time {c.time} > suite time {suite.time}", file=sys.stderr)
            bad = True
    for c in failed:
        r = [r for r in c.result if isinstance(r, Failure)][0]
        print(f"FAIL {c.name} {r.type}")
sys.exit(1 if bad else 0)
