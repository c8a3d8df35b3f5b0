#!/usr/bin/env python3
"""`setok chat` in a long session, and Ctrl-C in the long commands, on the shipped model.

1. 500 turns in one `setok chat` process (questions from the synthetic world's kinds, a
   /reset every few turns and a new /image now and then): every turn is answered, and the
   resident memory after turn 500 is within 5 % of what it was after the first 50 (the
   warm-up: arenas, caches and the KV cache reach their size there).
2. Ctrl-C: at the chat prompt it ends the conversation (exit 130); during an answer it stops
   that answer and the next question is answered. `setok eval` and `setok generate` stop on
   SIGINT with exit 130 and no output file; the time from the signal to the exit is printed
   (the worst of all), not asserted.

Usage: test_chat_soak.py SETOK_CLI MODEL_DIR IMAGE [IMAGE2]
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

TURNS = 500
WARMUP = 50
GROWTH_LIMIT = 0.05
QUESTIONS = [
    "What colour is the largest shape?", "How many shapes are there?",
    "Is there a circle?", "What is left of the square?", "Describe the scene.",
    "Which shape is the smallest?", "Is the star in front of the triangle?",
    "What colour is the background?",
]
passed = failed = 0
worst = (0.0, "")


def check(cond, what, detail=""):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + detail),
          flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def exit_after_signal(p):
    """Sends SIGINT to p and waits: (its exit status or None after 60 s, seconds taken)."""
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    return rc, time.monotonic() - t0


def latency(what, seconds):
    global worst
    print(f"     {what}: exited {seconds * 1000:.0f} ms after the signal", flush=True)
    if seconds > worst[0]:
        worst = (seconds, what)


def soak(cli, model, images):
    # --stop on a newline: one answer is one line of output, whatever the model says
    p = subprocess.Popen([cli, "chat", images[0], "--model", model, "--max-tokens", "48",
                          "--stop", "\n"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, bufsize=1)
    rng = random.Random(17)
    samples = {}
    answered = 0
    try:
        for turn in range(1, TURNS + 1):
            if turn % 7 == 0:
                p.stdin.write("/reset\n")
            if turn % 50 == 25:
                p.stdin.write(f"/image {images[turn // 50 % len(images)]}\n")
            p.stdin.write(rng.choice(QUESTIONS) + "\n")
            p.stdin.flush()
            line = p.stdout.readline()
            if not line:
                break
            answered += 1
            if turn == WARMUP or turn % 100 == 0:
                samples[turn] = rss_kib(p.pid)
    finally:
        p.stdin.close()
        rc = p.wait(timeout=60)
        err = p.stderr.read()
    check(answered == TURNS and rc == 0, f"chat: {answered} of {TURNS} turns answered, exit {rc}",
          err[-500:])
    if WARMUP in samples and TURNS in samples:
        base, end = samples[WARMUP], samples[TURNS]
        growth = (end - base) / base
        print("     resident memory (KiB) after turn " +
              ", ".join(f"{t}: {kib}" for t, kib in sorted(samples.items())))
        check(growth <= GROWTH_LIMIT, f"chat: memory after turn {TURNS} is {growth * 100:+.2f} % "
              f"of turn {WARMUP}'s ({base} -> {end} KiB), limit +{GROWTH_LIMIT * 100:.0f} %")


def chat_interrupts(cli, model, image):
    p = subprocess.Popen([cli, "chat", image, "--model", model, "--max-tokens", "256"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, bufsize=1)
    # during an answer (or, when it is quicker than the signal, just after it)
    p.stdin.write("Describe the scene.\n")
    p.stdin.flush()
    first = p.stdout.read(1)
    p.send_signal(signal.SIGINT)
    rest = p.stdout.readline()
    p.stdin.write("How many shapes are there?\n")
    p.stdin.flush()
    next_answer = p.stdout.readline()
    check(bool(first + rest) and p.poll() is None and next_answer != "",
          "chat: Ctrl-C during an answer ends it; the next question is answered",
          repr((first + rest, next_answer)))
    # at the prompt
    time.sleep(0.2)
    rc, seconds = exit_after_signal(p)
    latency("chat at the prompt", seconds)
    err = p.stderr.read()
    check(rc == 130 and "interrupted" in err, f"chat: Ctrl-C at the prompt exits 130 (got {rc})",
          err[-300:])


def interrupt(cli, what, args, out_file, delays):
    for delay in delays:
        if out_file and os.path.exists(out_file):
            os.remove(out_file)
        p = subprocess.Popen([cli, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
        time.sleep(delay)
        if p.poll() is not None:
            print(f"     {what}: finished within {delay:.1f} s, before the signal")
            continue
        rc, seconds = exit_after_signal(p)
        latency(f"{what} after {delay:.1f} s", seconds)
        err = p.stderr.read()
        check(rc == 130 and "interrupted" in err,
              f"{what}: SIGINT after {delay:.1f} s exits 130 (got {rc})", err[-300:])
        if out_file:
            check(not os.path.exists(out_file), f"{what}: no output file after the interrupt")


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    cli, model, images = sys.argv[1], sys.argv[2], sys.argv[3:]
    soak(cli, model, images)
    chat_interrupts(cli, model, images[0])
    with tempfile.TemporaryDirectory(prefix="test-chat-soak-") as tmp:
        rng = random.Random(5)
        interrupt(cli, "eval", ["eval", "--model", model, "--count", "40", "--no-gen"], None,
                  [rng.uniform(0.5, 3.0) for _ in range(3)])
        out = os.path.join(tmp, "generated.png")
        interrupt(cli, "generate", ["generate", "a red circle", "-o", out, "--model", model,
                                    "--steps", "200"], out,
                  [rng.uniform(0.3, 2.0) for _ in range(2)])
    print(f"worst interrupt latency: {worst[0] * 1000:.0f} ms ({worst[1]})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
