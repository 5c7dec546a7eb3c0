"""Schemathesis hooks for scripts/fuzz.sh.

Generated jobs run real code in the sandbox. The document allows run limits up to the language's
maximum (30 s of wall time), and `?wait=true` holds the request that long: clamping the time
limits of what is sent keeps every request, and so the whole run, short. Only the values are
lowered, never their type, so bodies that are invalid on purpose stay invalid.
"""

import schemathesis

# Upper bounds for what a generated job may ask for; the document's minimums are below them.
CLAMP = {"wall_time_ms": 1500, "cpu_time_ms": 1000}
# A judge-mode job runs every test: keep a generated one to a few, each clamped as a job is
# (a list over the contract's 1000 is left alone: it is invalid on purpose).
MOST_TESTS = 3
MOST_VALID_TESTS = 1000


def _clamp_limits(job):
    if not isinstance(job, dict):
        return
    _clamp(job.get("limits"))
    tests = job.get("tests")
    if isinstance(tests, list):
        if MOST_TESTS < len(tests) <= MOST_VALID_TESTS:
            del tests[MOST_TESTS:]
        for test in tests:
            if isinstance(test, dict):
                _clamp(test.get("limits"))


def _clamp(limits):
    if not isinstance(limits, dict):
        return
    for name, most in CLAMP.items():
        value = limits.get(name)
        # bool is an int in Python; a `true` limit must stay the malformed value it is.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > most:
            limits[name] = type(value)(most)


@schemathesis.hook
def before_call(context, case, kwargs):
    _clamp_limits(case.body)
