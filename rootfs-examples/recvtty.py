#!/usr/bin/env python3
"""recvtty.py SOCKET COMMAND [ARG...]

The other end of `--console-socket`, for trying `capsa exec -t` / `create` with a
terminal by hand (runc ships a Go tool of the same name; containerd's shim and
conmon do this job in real use):

  1. listens on the unix socket SOCKET (removed again on exit),
  2. runs COMMAND, which is expected to pass `--console-socket SOCKET` to capsa,
  3. receives the pty master capsa sends over the socket (one SCM_RIGHTS message),
  4. copies the container's terminal output to stdout, and stdin to the terminal
     (stdin is put in raw mode while it is a terminal, so keys go to the container),
  5. exits with COMMAND's exit status once COMMAND has exited and the terminal is
     drained.

Example:
  rootfs-examples/recvtty.py /tmp/console.sock capsa exec -t --console-socket /tmp/console.sock c1 tty
"""

import os
import select
import socket
import subprocess
import sys
import termios
import time
import tty


def main(argv):
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) < 3 else sys.stdout)
        return 2 if len(argv) < 3 else 0
    path, command = argv[1], argv[2:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as e:
        print(f"recvtty: bind {path}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        sock.listen(1)
        child = subprocess.Popen(command)
        master = receive_master(sock, child)
        if master is None:
            return child.wait()
        relay(master, child)
        return child.returncode
    finally:
        sock.close()
        os.unlink(path)


def receive_master(sock, child):
    """Waits for the connection (while COMMAND runs) and returns the fd it carries."""
    while True:
        ready, _, _ = select.select([sock], [], [], 0.1)
        if ready:
            conn, _ = sock.accept()
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 1, 1)
            if not fds:
                print("recvtty: no file descriptor on the socket", file=sys.stderr)
                return None
            return fds[0]
        if child.poll() is not None:
            print("recvtty: the command exited without sending a terminal", file=sys.stderr)
            return None


def relay(master, child):
    """Copies master -> stdout and stdin -> master until COMMAND is gone and the pty is drained."""
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    if saved is not None:
        tty.setraw(stdin)
    inputs = [master, stdin]
    quiet_since = None
    try:
        while True:
            ready, _, _ = select.select(inputs, [], [], 0.1)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    data = b""
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
                quiet_since = None
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    os.write(master, data)
                else:
                    inputs.remove(stdin)
            if child.poll() is not None and not ready:
                # The process is gone; a slave kept open by a stray background job must not
                # keep us here: stop after a short silence.
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.5:
                    break
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        os.close(master)
    child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
