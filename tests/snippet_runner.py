"""Runs Keras user snippets, each in its own forked process, for test_keras_user_snippets.

    python snippet_runner.py keras|neuraxis snippets.json outdir

imports `keras` (torch backend) or `neuraxis` once, then forks one child per snippet:
the import costs once (Keras + torch take many seconds on a loaded machine) while every
snippet still starts from a pristine process (layer-name counters, seeds, working
directory). The child runs in outdir/<name>/, its stdout and stderr go to files there, and
its exit status says whether the snippet raised. For neuraxis the snippet's
`import keras` line is replaced by `import neuraxis as keras`, which is all a user changes.

Example:

    python tests/snippet_runner.py neuraxis /tmp/snippets.json /tmp/out
"""
import json
import os
import signal
import sys
import traceback

TIMEOUT_S = 120


def run_one(name, code, outdir):
    path = os.path.join(outdir, name)
    os.makedirs(path, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    # the child: its own directory and output files, never back into the parent's loop
    status = 1
    try:
        os.chdir(path)
        out = os.open("stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open("stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        signal.alarm(TIMEOUT_S)
        exec(compile(code, f"<snippet {name}>", "exec"), {"__name__": "__main__"})
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main():
    front, spec, outdir = sys.argv[1:4]
    with open(spec) as f:
        snippets = json.load(f)
    if front == "keras":
        os.environ["KERAS_BACKEND"] = "torch"
        import keras  # noqa: F401
    else:
        import neuraxis  # noqa: F401
        snippets = {name: code.replace("import keras\n", "import neuraxis as keras\n", 1)
                    for name, code in snippets.items()}
    status = {}
    # one child at a time: the snippets time training and share 2 cores with everything else
    for name, code in snippets.items():
        _, rc = os.waitpid(run_one(name, code, outdir), 0)
        status[name] = os.waitstatus_to_exitcode(rc)
    with open(os.path.join(outdir, "status.json"), "w") as f:
        json.dump(status, f)


if __name__ == "__main__":
    main()
