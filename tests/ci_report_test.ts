/** CI's report: seconds per test file from deno's JUnit output, and guest boots from the QEMU wrapper's log. */
import assert from "node:assert/strict";
import { qemuRuns, secondsPerFile } from "../scripts/ci_report.ts";

Deno.test("ci report: a file's seconds are its tests', not its steps' again", () => {
  const xml = `<testsuites><testsuite name="./tests/a_test.ts">
<testcase name="outer" classname="./tests/a_test.ts" time="10.5" line="1" col="6"></testcase>
<testcase name="outer &gt; step" classname="./tests/a_test.ts" time="10.0" line="2" col="6"></testcase>
<testcase name="other" classname="./tests/a_test.ts" time="1.5" line="3" col="6"></testcase>
<testcase name="b" classname="./tests/b_test.ts" time="2" line="1" col="6"></testcase>
</testsuite></testsuites>`;
  assert.deepEqual([...secondsPerFile(xml)], [["./tests/a_test.ts", 12], ["./tests/b_test.ts", 2]]);
});

Deno.test("ci report: boots are VMs on a real base and installs of 30 s or more; resumes apart; the rest are other runs", () => {
  const runs = qemuRuns(
    "44 install virtdev-install\n20 install virtdev-install\n21 boot demo\n3 boot a\n9 other a\n1 other (unnamed)\nnoise\n" +
      "4 resume sus\n5 resume sus\n",
  );
  assert.deepEqual([...runs.boots], [["virtdev-install", 1], ["demo", 1], ["a", 1]]);
  assert.equal(runs.resumes, 2);
  assert.equal(runs.other, 3);
});
