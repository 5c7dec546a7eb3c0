"""The official Judge0 Python SDK (PyPI `judge0`, pinned in scripts/compat-venv.sh), used
unchanged against this service's Judge0 surface. Run by tests/it/judge0.rs as
`python judge0_sdk.py <base url>`; prints one JSON line per check and exits non-zero if any fails.

The client is always constructed explicitly on the service's URL, and the script stops if that
fails: given no client, the SDK would fall back to Judge0's public endpoints, which no test may
ever reach. The caller also points every proxy variable at a dead local port with only
127.0.0.1 exempted, so a request anywhere else fails instead of leaving the machine."""

import json
import sys

import judge0
from judge0 import Client, LanguageAlias, Status, Submission

base = sys.argv[1]
if not base.startswith("http://127.0.0.1:"):
    sys.exit(f"refusing a base URL that is not 127.0.0.1: {base}")
try:
    client = Client(base)
except Exception as e:  # the SDK reports every failure here as "Authentication failed"
    print(json.dumps({"check": "client construction", "ok": False, "detail": repr(e)}))
    sys.exit(2)

failures = 0


def check(name, ok, **detail):
    global failures
    failures += 0 if ok else 1
    print(json.dumps({"check": name, "ok": bool(ok), **{k: str(v) for k, v in detail.items()}}))


check("client construction", True, languages=len(client.languages))
check("C++ alias resolves and is supported", client.is_language_supported(LanguageAlias.CPP))

s = judge0.run(client=client, source_code="print(input()[::-1])",
               language=LanguageAlias.PYTHON, stdin="olleh")
check("run with stdin", s.status == Status.ACCEPTED and s.stdout == "hello\n",
      status=s.status, stdout=s.stdout, time=s.time, memory=s.memory)

subs = judge0.run(client=client, source_code="a, b = map(int, input().split())\nprint(a + b)",
                  language=LanguageAlias.PYTHON,
                  test_cases=[("1 2", "3"), ("2 2", "5"), ("10 20", "30")])
got = [x.status for x in subs]
check("run with test cases", got == [Status.ACCEPTED, Status.WRONG_ANSWER, Status.ACCEPTED],
      statuses=got)

batch = [Submission(source_code=f"print({i} * {i})", language=LanguageAlias.PYTHON)
         for i in range(4)]
batch = judge0.async_run(client=client, submissions=batch)  # POST /submissions/batch
batch = judge0.wait(client=client, submissions=batch)
check("batch", [b.stdout for b in batch] == ["0\n", "1\n", "4\n", "9\n"]
      and all(b.status == Status.ACCEPTED for b in batch),
      stdouts=[b.stdout for b in batch])

s = judge0.run(client=client, source_code="int main() { return undeclared; }",
               language=LanguageAlias.CPP)
check("compile error", s.status == Status.COMPILATION_ERROR
      and "undeclared" in (s.compile_output or ""), status=s.status, compile_output=s.compile_output)

s = judge0.run(client=client, source_code="while True:\n    pass\n",
               language=LanguageAlias.PYTHON, cpu_time_limit=1)
check("time limit exceeded", s.status == Status.TIME_LIMIT_EXCEEDED, status=s.status, time=s.time)

s = judge0.run(client=client, source_code="import sys\nprint('bye')\nsys.exit(3)\n",
               language=LanguageAlias.PYTHON)
check("NZEC with its exit code", s.status == Status.RUNTIME_ERROR_NZEC and s.exit_code == 3
      and s.stdout == "bye\n", status=s.status, exit_code=s.exit_code)

s = judge0.run(client=client,
               source_code="#include <cstdio>\nint main(){long a,b;scanf(\"%ld %ld\",&a,&b);printf(\"%ld\\n\",a+b);}",
               language=LanguageAlias.CPP, stdin="40 2", expected_output="42")
check("C++ with expected output", s.status == Status.ACCEPTED and s.stdout == "42\n",
      status=s.status, stdout=s.stdout)

s = judge0.run(client=client,
               source_code="public class Main { public static void main(String[] a) { System.out.println(\"hi from java\"); } }",
               language=LanguageAlias.JAVA)
check("Java", s.status == Status.ACCEPTED and s.stdout == "hi from java\n",
      status=s.status, stdout=s.stdout, stderr=s.stderr)

sys.exit(1 if failures else 0)
