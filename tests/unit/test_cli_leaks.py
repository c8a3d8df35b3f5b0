#!/usr/bin/env python3
"""The `setok` commands on the shipped model leave nothing behind: run in an
AddressSanitizer build (LeakSanitizer on, as meson's test environment sets it), every
main command — info --load, tokens with its outputs, ask, a chat with its commands,
segment by points, by the decoder and by a phrase, generate, edit by token and by mask,
eval with plots, world — exits as expected with no leak, memory error or undefined
behaviour reported; so do an interrupted generation (exit 130) and a malformed file
(exit 2). Registered only in builds with -Db_sanitize=address.

Usage: test_cli_leaks.py SETOK_CLI MODEL_DIR IMAGE
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

passed = failed = 0
REPORTS = ("LeakSanitizer", "AddressSanitizer", "runtime error:")


def check(cond, what, detail=""):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail),
          flush=True)


def run(cli, args, want=0, stdin=None, name=None):
    t0 = time.monotonic()
    p = subprocess.run([cli, *args], input=stdin, capture_output=True, text=True, timeout=600)
    report = next((r for r in REPORTS if r in p.stderr), None)
    tail = p.stderr[p.stderr.find(report) - 200:][:1500] if report else p.stderr[-500:]
    check(p.returncode == want and not report,
          f"{name or args[0]}: exit {p.returncode} (want {want}), "
          f"{'a ' + report + ' report' if report else 'clean'} in {time.monotonic() - t0:.1f} s",
          tail)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    cli, model, image = sys.argv[1:]
    m = ["--model", model]
    with tempfile.TemporaryDirectory(prefix="test-cli-leaks-") as tmp:
        out = lambda name: os.path.join(tmp, name)
        run(cli, ["info", "--load", "--device", "cpu", model], name="info --load")
        run(cli, ["tokens", image, *m, "--overlay", out("overlay.png"), "--masks", out("masks"),
                  "--json", out("tokens.json")], name="tokens")
        run(cli, ["ask", image, "What colour is the largest shape?", *m, "--json"], name="ask")
        run(cli, ["chat", image, *m, "--max-tokens", "16"], name="chat",
            stdin="Describe the scene.\nHow many shapes are there?\n/tokens patches\n"
                  "Is there a circle?\n/reset\n/image " + image + "\n/help\nWhat is left?\n/quit\n")
        run(cli, ["segment", image, "--point", "64,64", "-o", out("points.png"), *m],
            name="segment --point")
        run(cli, ["segment", image, "--point", "64,64", "--decoder", "-o", out("decoder.png"),
                  *m], name="segment --decoder")
        run(cli, ["segment", image, "--text", "the largest shape", "-o", out("phrase.png"), *m,
                  "--json"], name="segment --text")
        run(cli, ["generate", "a red circle", "-o", out("generated.png"), *m, "--steps", "3",
                  "--preview-dir", out("previews")], name="generate")
        run(cli, ["edit", image, "--point", "64,64", "make it blue", "-o", out("edited.png"), *m,
                  "--steps", "3", "--mask-out", out("edit-mask.png")], name="edit --point")
        run(cli, ["edit", image, "--mask", out("points.png"), "make it red", "-o",
                  out("edited2.png"), *m, "--steps", "3"], name="edit --mask")
        run(cli, ["eval", *m, "--count", "2", "--gen-count", "1", "--gen-steps", "2", "--plots",
                  out("plots"), "--json"], name="eval")
        run(cli, ["world", "--out", out("world"), "--count", "2", "--edits"], name="world")

        # interrupted: the cancelled job's memory goes too
        p = subprocess.Popen([cli, "generate", "a red circle", "-o", out("never.png"), *m,
                              "--steps", "500"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=300)[1]
        report = next((r for r in REPORTS if r in err), None)
        check(p.returncode == 130 and not report,
              f"generate interrupted: exit {p.returncode} (want 130), "
              f"{'a ' + report + ' report' if report else 'clean'}", err[-1500:])

        # malformed: the error path frees what it made
        with open(out("bad.safetensors"), "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"t\":\x00{}}     ")
        run(cli, ["info", out("bad.safetensors")], want=2, name="info on a malformed file")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
