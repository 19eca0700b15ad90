"""Deployment guide steps 1 and 2, "Build as a normal user" and "Install": make install and uninstall (DESTDIR,
PREFIX, where the units go) and the man page. Each uses the real tool from Debian."""
import os
import re
import shutil
import subprocess

from conftest import BINARY, ROOT
from ops_helpers import DEPLOY


# --- make install ----------------------------------------------------------------------------------------------

def test_make_install_and_uninstall_with_destdir(tmp_path):
    dest = tmp_path / "root"
    env = dict(os.environ, RELEASE=BINARY)
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr", f"RELEASE={BINARY}"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.access(dest / "usr/bin/uvchatd", os.X_OK)
    assert (dest / "usr/share/uvchat/www/index.html").exists()
    assert (dest / "usr/share/man/man8/uvchatd.8").exists()
    service = (dest / "usr/lib/systemd/system/uvchat.service").read_text()
    assert "ExecStart=/usr/bin/uvchatd --www /usr/share/uvchat/www" in service
    assert (dest / "usr/lib/systemd/system/uvchat.socket").exists()
    r = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    left = [os.path.join(d, f) for d, _, files in os.walk(dest) for f in files]
    assert left == [], left


def test_make_install_default_prefix_puts_units_where_systemd_reads_them(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", f"RELEASE={BINARY}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.access(dest / "usr/local/bin/uvchatd", os.X_OK)
    assert (dest / "usr/local/share/uvchat/www/index.html").exists()
    assert (dest / "usr/local/share/man/man8/uvchatd.8").exists()
    units = [str(dest / "etc/systemd/system" / u) for u in ("uvchat.service", "uvchat.socket")]
    assert "ExecStart=/usr/local/bin/uvchatd --www /usr/local/share/uvchat/www" in open(units[0]).read()
    # Verify the installed units inside the staged root, so that their ExecStart must name the installed binary.
    shutil.copytree("/usr/lib/systemd/system", dest / "usr/lib/systemd/system", symlinks=True)
    os.makedirs(dest / "bin")
    shutil.copy("/bin/kill", dest / "bin/kill")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={dest}"] + units, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    os.remove(dest / "usr/local/bin/uvchatd")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={dest}", units[0]], capture_output=True, text=True)
    assert r.returncode != 0 and "/usr/local/bin/uvchatd" in r.stdout + r.stderr, r.stdout + r.stderr


def test_make_install_refuses_without_a_built_binary(tmp_path):
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={tmp_path}", f"RELEASE={tmp_path}/none"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "make build" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not os.path.exists(tmp_path / "usr")


def test_man_page_documents_every_flag_and_renders_cleanly():
    page = os.path.join(DEPLOY, "uvchatd.8")
    help_text = subprocess.run([BINARY, "--help"], capture_output=True, text=True).stdout
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))
    assert len(flags) > 20, help_text
    lines = open(page).read().replace("\\-", "-").splitlines()
    # A flag counts as described when it is the tag of a .TP paragraph, the line after the .TP.
    tagged = {f for prev, line in zip(lines, lines[1:]) if prev == ".TP"
              for f in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line)}
    missing = sorted(flags - tagged)
    assert not missing, f"flags in --help but not described in deploy/uvchatd.8: {missing}"
    r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr
