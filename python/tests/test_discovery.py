"""How the SDK finds the hearth binary it starts ``hearth serve`` with."""

import os
import shutil
import stat
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import hearth  # noqa: E402
from hearth import client  # noqa: E402


def _exe(path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    os.chmod(path, stat.S_IRWXU)
    return path


class FindHearthTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.env = mock.patch.dict(os.environ, {"PATH": os.path.join(self.dir, "empty")})
        self.env.start()
        self.addCleanup(self.env.stop)
        os.environ.pop("HEARTH_BIN", None)

    def test_order(self):
        on_path = _exe(os.path.join(self.dir, "path", "hearth"))
        located = _exe(os.path.join(self.dir, "usr", "local", "bin", "hearth"))
        with mock.patch.object(client, "_hearth_locations", return_value=[os.path.join(self.dir, "missing"), located]):
            # Nothing on PATH, no HEARTH_BIN: the first existing location.
            self.assertEqual(client._find_hearth("hearth"), located)
            # hearth on PATH wins over the fixed locations.
            os.environ["PATH"] = os.path.dirname(on_path)
            self.assertEqual(client._find_hearth("hearth"), on_path)
            # $HEARTH_BIN wins over PATH; an explicit hearth_bin over both.
            os.environ["HEARTH_BIN"] = "/from/env/hearth"
            self.assertEqual(client._find_hearth("hearth"), "/from/env/hearth")
            self.assertEqual(client._find_hearth("/given/hearth"), "/given/hearth")

    def test_none_found_says_what_to_do(self):
        with mock.patch.object(client, "_hearth_locations", return_value=[os.path.join(self.dir, "missing")]):
            self.assertIsNone(client._find_hearth("hearth"))
            with self.assertRaises(hearth.UnavailableError) as cm:
                hearth.Client(socket=os.path.join(self.dir, "none.sock"))
        msg = str(cm.exception)
        self.assertIn("make install", msg)
        self.assertIn("HEARTH_BIN", msg)

    def test_checkout_location(self):
        # The first location is this checkout's bin/hearth (where `make build` puts it).
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(client.__file__))))
        self.assertEqual(client._hearth_locations()[0], os.path.join(repo, "bin", "hearth"))


if __name__ == "__main__":
    unittest.main()
