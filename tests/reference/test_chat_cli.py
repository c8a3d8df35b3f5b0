#!/usr/bin/env python3
"""test_chat_cli.py — `setok chat` (src/cmd-chat.c) driven through a pipe.

Builds the tiny random LLaVA folder of test_llava.py and pipes
  question 1 / /tokens setok / question 2 / /image missing.png / question 3 / /quit
into `SETOK_CLI chat IMAGE --model DIR --temperature 0`. Checks: exit 0; stdout holds three
answers, each ended by a newline: the first equals `setok ask` on question 1 (patches),
the second `setok ask --tokens setok` on question 2 (/tokens starts a new conversation), the
third follows; stderr names the missing image and the session goes on.
Usage: test_chat_cli.py [SETOK_CLI] [--seed N]
Exit 0 when all pass, 1 on a failure, 77 when test_llava.py's dependencies are missing.
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_llava  # noqa: E402  (exits 77 itself when numpy, torch or transformers is missing)

NEW_TOKENS = 12
Q1 = "What colour is the square on the left?"
Q2 = "And the one on the right?"
Q3 = "Which is larger?"


def common(folder):
    return ["--model", folder, "--max-tokens", str(NEW_TOKENS), "--temperature", "0",
            "--device", "cpu"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", nargs="?", default=os.environ.get("SETOK_CLI"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.cli:
        print("SETOK_CLI is not set and no CLI path was given")
        return 1
    if test_llava.Image is None:
        print("skipped: Pillow is missing")
        return 77
    R = test_llava.Results()

    with tempfile.TemporaryDirectory() as folder:
        _, _, image_path, _ = test_llava.build_llava_folder(folder, args.seed)
        missing = os.path.join(folder, "missing.png")

        a1 = subprocess.run([args.cli, "ask", image_path, Q1, *common(folder)],
                            capture_output=True, text=True, errors="replace")
        a2 = subprocess.run([args.cli, "ask", image_path, Q2, "--tokens", "setok",
                             *common(folder)], capture_output=True, text=True, errors="replace")
        R.check("ask runs", a1.returncode == 0 and a2.returncode == 0,
                f"{a1.stderr.strip()} {a2.stderr.strip()}")

        script = f"{Q1}\n/tokens setok\n{Q2}\n/image {missing}\n{Q3}\n/quit\n"
        p = subprocess.run([args.cli, "chat", image_path, *common(folder)], input=script,
                           capture_output=True, text=True, errors="replace", timeout=300)
        R.check("chat exit 0", p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()}")
        out = p.stdout
        R.check("answer 1 equals ask", out.startswith(a1.stdout),
                f"\n  chat {out!r}\n  ask  {a1.stdout!r}")
        rest = out[len(a1.stdout):] if out.startswith(a1.stdout) else ""
        R.check("answer 2 equals ask --tokens setok", rest.startswith(a2.stdout),
                f"\n  chat {rest!r}\n  ask  {a2.stdout!r}")
        third = rest[len(a2.stdout):] if rest.startswith(a2.stdout) else ""
        # a random model may put newlines inside an answer: the third is whatever follows
        R.check("three answers", third.endswith("\n"), f"third answer {third!r}")
        R.check("missing image reported", "missing.png" in p.stderr, repr(p.stderr))

        # a bad option is a usage error
        p = subprocess.run([args.cli, "chat", "--model", folder, "--json"], input="",
                           capture_output=True, text=True, errors="replace")
        R.check("chat --json exits 2", p.returncode == 2, f"exit {p.returncode}")

    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
