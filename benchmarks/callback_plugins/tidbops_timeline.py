# Copyright (c) tidbops.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Timeline of a playbook run as JSON lines, for the benchmarks and the reliability tests."""

from __future__ import annotations

DOCUMENTATION = r"""
name: tidbops_timeline
type: aggregate
short_description: Write task start/end instants and the recap as JSON lines
description:
  - Used by C(benchmarks/run.py) and C(tests/integration/reliability) only; enabled through the environment.
  - Each line is one event with the wall-clock time C(t). Results carry the status, the host and, for
    C(tidbops.cluster.component_ready), the gated component; failures add their C(msg) as Ansible
    censored it, and C(ticdc_changefeed) its C(request_count). Never module arguments or other return values, so secrets stay out of the file.
options:
  path:
    description: File the events are appended to (flushed after each line, so it can be followed live).
    env:
      - name: TIDBOPS_TIMELINE
    required: true
"""

import json
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tidbops_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._out = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._out = open(self.get_option("path"), "a", encoding="utf-8")  # pylint: disable=consider-using-with

    def _emit(self, event, **fields):
        if self._out is None:
            return
        fields.update(event=event, t=time.time())
        self._out.write(json.dumps(fields, sort_keys=True) + "\n")
        self._out.flush()

    @staticmethod
    def _task_fields(task):
        fields = {"task": task.get_name(), "action": task.action}
        # The gated component names which gate this is; it is never secret. A templated one (a gate
        # that serves several kinds) is known from its result only.
        if task.action.endswith("component_ready") and "{{" not in str(task.args.get("component", "")):
            fields["component"] = str(task.args.get("component", ""))
        return fields

    def v2_playbook_on_play_start(self, play):
        self._emit("play_start", play=play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit("task_start", **self._task_fields(task))

    def v2_playbook_on_handler_task_start(self, task):
        self._emit("task_start", handler=True, **self._task_fields(task))

    def _result(self, status, result):
        payload = result._result  # pylint: disable=protected-access
        fields = self._task_fields(result._task)  # pylint: disable=protected-access
        if status == "failed":
            # Already censored by Ansible for no_log tasks.
            fields["msg"] = str(payload.get("msg", ""))
        if fields["action"].endswith("component_ready") and isinstance(payload.get("component"), str):
            fields["component"] = payload["component"]
        if isinstance(payload.get("request_count"), int):  # ticdc_changefeed's cost, a plain number
            fields["request_count"] = payload["request_count"]
        self._emit("task_end", status=status, changed=bool(payload.get("changed", False)),
                   host=result._host.get_name(), **fields)  # pylint: disable=protected-access

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._emit("recap", hosts=recap)
        if self._out is not None:
            self._out.close()
            self._out = None
