"""The daemon: the one process that writes the store, kept warm for every client.

    RPC threads (socket) ──► ops (reads: search, status; writes go to the worker)
    watchdog thread ──► Worker.paths_changed ──┐
    git hooks ──► socket "notify" / spool ─────┼──► Worker (settle, coalesce, index)
    reconcile timer, start-up reconcile ───────┘

Start-up order: take the data-dir lock (a second daemon refuses at once), open the store,
start the worker and watchers, queue a full reconcile and the spooled hook notes, then
answer on the socket. Shutdown (SIGTERM, SIGINT or `contextd stop`) joins every thread.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contextd import hooks, ops
from contextd.app import STORE_RETRY_S, App, resolve_root
from contextd.backlog import Backlog
from contextd.connectors.watch import Watchers
from contextd.errors import STORE_NOT_NOW, ContextdError, DaemonError, StoreUnavailable
from contextd.home import make_home
from contextd.lock import DataDirLock, clear_info, holder, holder_command, read_info, write_info
from contextd.rpc import PROTOCOL, Emit, RpcServer
from contextd.settings import Settings
from contextd.worker import Call, GitMoved, Reconcile, Worker

log = logging.getLogger(__name__)

SPOOL_POLL_S = 0.1  # hooks leave notes in the spool; a scan of an empty dir costs nothing
LOCK_PROBE_S = 1.0
ROOT_CHECK_S = 2.0  # how often source folders are checked for having been replaced
STALE_TMP_S = 3600.0
WRITE_OPS = frozenset({"add", "remove", "index", "reindex", "verify", "leftovers"})


def already_running(home: Path) -> DaemonError:
    command = holder_command(home).split()
    if command and command[1:2] not in (["daemon"], ["serve"]):  # a command at work
        return DaemonError(
            f"Another contextd command ({holder(home)}) is working on {home}: the daemon "
            "can start once it is done (`contextd start` waits for it)."
        )
    info = read_info(home)
    if info:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started_at"]))
        who = f"pid {info['pid']}, started {since}"
    else:
        who = "another contextd process holds its lock"
    return DaemonError(
        f"A contextd daemon is already running on {home} ({who}). "
        "Use it (`contextd status`), or run `contextd stop` first."
    )


class Daemon:
    def __init__(
        self,
        settings: Settings,
        on_ready: Callable[[], None] | None = None,
        port_from: str = "CONTEXTD_HTTP_PORT",
    ) -> None:
        self.settings = settings
        self.on_ready = on_ready  # called once it serves (the foreground `serve` says so)
        self.port_from = port_from  # where the user set the HTTP port, for errors
        self.home = settings.home
        self.stop_event = threading.Event()
        self.started_at = time.time()
        self.lock = DataDirLock(self.home)
        self.http: Any = None
        self._missing: set[str] = set()  # sources whose folder is gone, until it is back

    def run(self) -> None:
        make_home(self.home)
        # A moment's wait: `stop` and the launcher check the lock by taking it briefly.
        if not self.lock.acquire(wait_s=LOCK_PROBE_S):
            raise already_running(self.home)
        try:
            self._serve()
        finally:
            if self.lock.still_ours():  # else the file is a new data dir's daemon's
                clear_info(self.home)
            self.lock.release()

    def stop(self) -> None:
        self.stop_event.set()

    def _serve(self) -> None:
        self.app = App(self.settings)
        try:
            _ = self.app.store  # a wrong model or namespace fails before "ready"
        except STORE_NOT_NOW as exc:  # a server down, an upgrade's chunker: keywords serve
            log.warning("%s Searching the keyword index until then.", exc)
        self.worker = Worker(
            self.app, self.settings.settle_ms / 1000, self.settings.reconcile_interval_s
        )
        self.app.on_store_change = lambda: self.worker.submit(Reconcile(None))
        self.backlog = Backlog(self.app, self.worker.busy)
        self.backlog.health = self.worker.health
        self.worker.on_idle = self.backlog.wake
        self.watchers = Watchers(
            self.worker.paths_changed,
            self.settings.polling_interval_s,
            force_polling=self.settings.watch == "polling",
            on_fallback=lambda name: self.worker.submit(Reconcile(name)),
        )
        server = RpcServer(self.home, self.dispatch)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        self.worker.start()
        self.backlog.start()
        self.watchers.start()
        try:
            for row in self.app.catalog.sources():
                self._watch(row.name, row.root)
            self.worker.submit(Call(self._refresh_hooks))  # git calls: not before serving
            self.worker.submit(Reconcile(None))
            self._drain_spool()
            self.worker.submit(Call(self.app.embedder.load))
            self.http = self._start_http()
            write_info(  # before serving: a request never meets another daemon's file
                self.home,
                pid=os.getpid(),
                started_at=self.started_at,
                socket=str(server.path),
                http=self.http.url if self.http else None,
                protocol=PROTOCOL,
            )
            server.start()
            log.info("daemon ready (pid %d) on %s", os.getpid(), server.path)
            if self.on_ready:
                self.on_ready()
            roots_checked = time.monotonic()
            spool_failed = store_tried = 0.0
            while not self.stop_event.wait(SPOOL_POLL_S):
                if time.monotonic() - roots_checked > ROOT_CHECK_S:
                    roots_checked = time.monotonic()
                    if not self.lock.still_ours():
                        log.error(
                            "the data dir %s was deleted or replaced under the daemon; "
                            "stopping (`contextd start` makes a new one)",
                            self.home,
                        )
                        break
                    self._rewatch_replaced_roots()
                try:
                    self._drain_spool()
                except Exception:  # the daemon outlives any one bad note
                    if time.monotonic() - spool_failed > 60:  # it is tried every 100 ms
                        spool_failed = time.monotonic()
                        log.exception("reading hook notes failed (said once a minute)")
                if self.app.store_down and time.monotonic() - store_tried > STORE_RETRY_S:
                    store_tried = time.monotonic()
                    self.worker.submit(Call(self._try_store))
                if self.worker.health.should_retry():  # after a full disk: try again
                    log.info("retrying after a full disk")
                    self.worker.submit(Reconcile(None))
                    self.backlog.wake()
        finally:
            log.info("daemon stopping")
            server.close()  # no new requests; then no queued work starts (the model's load)
            self.worker.stop()
            self.backlog.stop()
            if self.http:
                self.http.stop()
            self.watchers.stop()
            self.worker.join(timeout=30)
            self.backlog.join(timeout=30)
            self.app.close()

    def _try_store(self) -> None:
        """Open a store that could not be reached (on the worker): when it answers, the
        app says so, and every source is reconciled into it."""
        try:
            _ = self.app.store
        except StoreUnavailable:
            pass  # still down: status and searches say so

    def _start_http(self) -> Any:
        if self.settings.http_port is None:
            return None
        from contextd.mcp_server.backend import LocalBackend
        from contextd.mcp_server.http import HttpServer, build_app, load_token

        s = self.settings
        app = build_app(
            LocalBackend(self.dispatch),
            load_token(self.home),
            s.http_host,
            s.http_port,
            s.http_max_body,
        )
        http = HttpServer(app, s.http_host, s.http_port)
        try:
            http.start()
        except OSError as exc:
            raise DaemonError(
                f"{exc}. Is the port taken? Set {self.port_from} to another."
            ) from None
        return http

    def _watch(self, name: str, root: Path) -> None:
        state = self.worker.state(name)
        try:
            self.watchers.watch(name, root)
            state.watch_error = None
        except OSError as exc:
            state.watch_error = f"cannot watch {root}: {exc}; changes are seen at reconcile scans"
            log.error("cannot watch %s (%s); relying on reconcile scans", root, exc)

    def _refresh_hooks(self) -> None:
        """Rewrite our hooks an earlier contextd wrote (after an upgrade): they would go on
        following the committing shell's CONTEXTD_HOME, and make a deleted data dir again.
        Only those: a hook the user removed, or one of their own, is left as it is."""
        for row in self.app.catalog.sources():
            if row.kind != "git":
                continue
            try:
                rewritten = hooks.refresh(row.root, self.home)
            except (ContextdError, OSError) as exc:
                log.warning("could not rewrite the git hooks of %s: %s", row.name, exc)
                continue
            if rewritten:
                log.info("rewrote %s's git hooks from an earlier contextd: %s", row.name, rewritten)

    def _rewatch_replaced_roots(self) -> None:
        """A source folder deleted and made again (or cloned afresh) has lost its watch:
        watch the new folder and read it whole."""
        for name in [*self.watchers.replaced_roots(), *self._missing]:
            try:
                root = self.app.catalog.source(name).root
            except ContextdError:
                self._missing.discard(name)  # removed meanwhile
                continue
            if root.is_dir():
                if name in self._missing:
                    log.info("%s: its folder %s is back; watching it again", name, root)
                else:
                    log.info("%s: its folder %s was replaced; watching it again", name, root)
                self._missing.discard(name)
                self._watch(name, root)
                self.worker.submit(Reconcile(name))
            elif name not in self._missing:
                # Its watch follows the folder to wherever it was moved: stop it, and say so.
                self._missing.add(name)
                self.watchers.unwatch(name)
                self.worker.state(name).watch_error = (
                    f"its folder {root} is gone (moved or deleted): it is watched and read "
                    f"again when it is back there, or run `contextd remove {name}`"
                )
                log.warning("%s: its folder %s is gone; waiting for it to come back", name, root)

    def _drain_spool(self) -> None:
        """Handle the notes git hooks left (`<time>-<pid>.note`: hook name, then root)."""
        try:
            entries = list(os.scandir(self.settings.spool_path))
        except FileNotFoundError:
            return
        for entry in sorted(entries, key=lambda e: e.name):
            path = Path(entry.path)
            try:
                if entry.name.endswith(".tmp"):
                    if time.time() - entry.stat().st_mtime > STALE_TMP_S:
                        path.unlink(missing_ok=True)  # a hook killed mid-write
                    continue
                if not entry.name.endswith(".note"):
                    continue
                hook, _, root = path.read_text().partition("\n")
                path.unlink(missing_ok=True)
            except FileNotFoundError:
                continue  # renamed or taken while we looked: a later scan sees it
            except (OSError, ValueError) as exc:
                log.warning("unreadable hook note %s: %s", entry.name, exc)
                path.unlink(missing_ok=True)
                continue
            if root.strip():
                self._notify({"root": root.rstrip("\n"), "hook": hook})

    def _notify(self, args: dict[str, Any]) -> list[str]:
        root = resolve_root(Path(str(args["root"])))
        names = [r.name for r in self.app.catalog.sources() if r.root == root]
        for name in names:
            self.worker.state(name).last_event = time.time()
            self.worker.submit(GitMoved(name))
        return names

    # -- requests ------------------------------------------------------------------------

    def dispatch(self, op: str, args: dict[str, Any], emit: Emit) -> Any:
        if op == "ping":
            http = self.http
            return {
                "pid": os.getpid(),
                "started_at": self.started_at,
                "home": str(self.home),
                "http": http.url if http else None,
            }
        if op == "stop":
            self.stop_event.set()
            return {"stopping": True, "pid": os.getpid()}
        if op == "status":
            return self._status(bool(args.get("skipped")), bool(args.get("hooks")))
        if op in ("index", "reindex"):  # searchable from the worker, then the backlog
            plain = {**args, "embed": False}
            result = self.worker.call(lambda: ops.run(self.app, op, plain, emit))
            if args.get("embed", True):
                self._await_backlog(result, emit)
            return result
        if op in WRITE_OPS:
            result = self.worker.call(lambda: ops.run(self.app, op, args, emit))
            self._after_write(op, result)
            return result
        return ops.run(self.app, op, args, emit)

    def _after_write(self, op: str, result: Any) -> None:
        if op == "add":
            self._watch(result["name"], Path(result["root"]))
            self.worker.submit(Reconcile(result["name"]))
        elif op == "remove":
            self.watchers.unwatch(result["name"])

    def _await_backlog(self, result: dict[str, Any], emit: Emit) -> None:
        """Report the backlog's progress until the indexed sources are fully embedded."""
        names = [r["source"] for r in result["sources"]]
        self.backlog.retry()  # a failure before this run (a store since reindexed) is past
        started = time.perf_counter()
        embedded0, cached0 = self.backlog.state.embedded, self.backlog.state.cached
        while True:
            pending = self.backlog.pending(names)
            state = self.backlog.state
            emit(
                {
                    "phase": "embedding",
                    "source": "embedding",
                    "pending": pending,
                    "embedded": state.embedded - embedded0,
                    "cached": state.cached - cached0,
                    "embed_rate": round(state.rate, 1),
                    "eta_s": self.backlog.eta_s(pending),
                }
            )
            if not pending or self.stop_event.is_set():
                break
            if state.error and not state.active:
                raise DaemonError(
                    f"Embedding stopped: {state.error}. The chunks stay searchable lexically; "
                    "see `contextd logs`, then run `contextd index` again."
                )
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        result["embedded"] += self.backlog.state.embedded - embedded0
        result["cached"] += self.backlog.state.cached - cached0
        result["pending"] = self.backlog.pending(names)
        result["embed_seconds"] = round(seconds, 3)
        result["embed_rate"] = round(result["embedded"] / seconds, 1) if seconds else 0.0
        result["seconds"] = round(result["seconds"] + seconds, 3)
        for row in result["sources"]:
            row["pending"] = self.backlog.pending([row["source"]])

    def _status(self, skipped: bool, with_hooks: bool = False) -> dict[str, Any]:
        data = ops.status(self.app, skipped, with_hooks)
        data["degraded"] = self.worker.health.degraded()
        data["daemon"] = {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 1),
            "model_loaded": self.app.embedder.loaded,
            "embedding": {
                "active": self.backlog.state.active,
                "rate": round(self.backlog.state.rate, 1),
                "embedded": self.backlog.state.embedded,
                "cached": self.backlog.state.cached,
                "error": self.backlog.state.error,
            },
        }
        # The backlog embeds by age and recent edits, not source by source: a source's
        # few chunks may wait behind another's thousands. Each is done by the end at most.
        backlog = sum(row["pending"] for row in data["sources"])
        for row in data["sources"]:
            state = self.worker.state(row["name"])
            row |= {
                "queued": len(state.pending),
                "eta_s": self.backlog.eta_s(backlog if row["pending"] else 0),
                "busy": state.busy or state.rescan,  # being indexed, or about to be looked at
                "last_event": state.last_event,
                "errors": ([state.watch_error] if state.watch_error else []) + list(state.errors),
                "watch": self.watchers.mode(row["name"]),
            }
        return data
