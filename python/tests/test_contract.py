"""The Python SDK against the operation table (docs/operations.json, made by
`go run ./internal/ops/gen`): every operation has its method, every
argument its keyword, and every keyword default is the table's (or None,
which leaves the default to the server, so it is the table's too)."""

import inspect
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import hearth  # noqa: E402

TABLE = os.path.join(HERE, "..", "..", "docs", "operations.json")

# Arguments a method takes under another name: the command (argv or a
# shell string), and bytes given to the text argument.
ALIASES = {"argv": "command", "stdin_base64": "stdin", "data_base64": "data"}
# Keywords that are not request fields.
EXTRA = {"on_output"}


def typed(arg):
    """The table default of an argument as the Python value it stands for."""
    d = arg.get("default", "")
    if arg["type"] == "boolean":
        return d == "true"
    if arg["type"] == "integer":
        return int(d) if d else None
    return d or None


class ContractTest(unittest.TestCase):
    def test_every_operation_and_argument(self):
        with open(TABLE) as f:
            table = json.load(f)
        problems = []
        for op in table["operations"]:
            cls, _, meth = op["python"].partition(".")
            fn = getattr(getattr(hearth, cls), meth, None)
            if fn is None:
                problems.append("%s: hearth.%s is missing" % (op["name"], op["python"]))
                continue
            params = {n: p for n, p in inspect.signature(fn).parameters.items() if n != "self"}
            seen = set()
            for arg in op["args"]:
                name = ALIASES.get(arg["name"], arg["name"])
                if name == "workspace" and cls == "Workspace":
                    continue  # the handle
                seen.add(name)
                p = params.get(name)
                if p is None:
                    problems.append("%s: %s has no keyword %s" % (op["name"], op["python"], name))
                    continue
                if p.default is inspect.Parameter.empty:
                    if not arg.get("required") and name not in ALIASES.values():
                        problems.append("%s: %s(%s) is required in Python but optional in the table" % (op["name"], op["python"], name))
                    continue
                want = typed(arg)
                if p.default is not None and p.default != want:
                    problems.append("%s: %s(%s=%r), table default %r" % (op["name"], op["python"], name, p.default, want))
            for name in params:
                if name not in seen and name not in EXTRA:
                    problems.append("%s: %s has keyword %s that the table does not know" % (op["name"], op["python"], name))
        self.assertEqual(problems, [], "\n".join(problems))


if __name__ == "__main__":
    unittest.main()


class ErrorKindsTest(unittest.TestCase):
    """Every error kind of the contract (docs/operations.json "errors") has
    its exception class, found from the kind and the HTTP status the server
    sends with it."""

    def test_every_kind_has_its_exception(self):
        from hearth.errors import error_from_body

        with open(TABLE) as f:
            kinds = json.load(f)["errors"]
        self.assertGreaterEqual(len(kinds), 11)
        for k in kinds:
            with self.subTest(kind=k["kind"]):
                e = error_from_body({"error": {"kind": k["kind"], "message": "m"}}, k["http"])
                self.assertEqual(e.kind, k["kind"])
                self.assertEqual(e.status, k["http"])
                self.assertIsInstance(e, hearth.HearthError)
                self.assertIsNot(type(e), hearth.HearthError, "kind %s has no class of its own" % k["kind"])
                self.assertIn(type(e).__name__, hearth.__all__)
