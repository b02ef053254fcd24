"""The report of ``tools/benchmark_ddp.py``: what each training run recorded, and the Markdown summary.

A run is one ``tools/dist_train.sh`` launch; its run folder's ``metrics.jsonl``
holds the runner's ``throughput`` and ``consistency`` records
(:mod:`opentad.cores.run_log`, :mod:`opentad.cores.consistency`), its console
log any traceback. :func:`read_run` condenses them into a record; :func:`summary_markdown`
tabulates the records: the runs, the consistency checks, the resume, one
against several GPUs, and a verdict per check.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from opentad.cores.run_log import summarize_throughput

__all__ = ["read_run", "first_traceback", "verdicts", "summary_markdown"]

_TRACEBACK = "Traceback (most recent call last):"
_RANK_PREFIX = re.compile(r"\[rank\d+\]: ?$")  # torchrun's workers print uncaught tracebacks so prefixed


def _tagged(checks: Sequence[Mapping[str, Any]], tag: str) -> List[Mapping[str, Any]]:
    return [c for c in checks if c.get("tag") == tag]


def first_traceback(log_text: str, *, limit: int = 16) -> List[str]:
    """The first Python traceback in a run's console log: its header, then its last ``limit`` lines.

    A failed torchrun launch ends with torchrun's own traceback and failure
    banner, which name the failing rank but not the error; the first
    traceback is the failing rank's (``[rankN]: `` before each line, or the
    runner's logged one), whose last lines are the innermost frames and the
    exception.

    Args:
        log_text: the run's console output.
        limit: lines kept from the end of the traceback.

    Returns:
        The lines (prefixes kept), or ``[]`` when the log has no traceback.
    """
    lines = log_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.rstrip().endswith(_TRACEBACK)), None)
    if start is None:
        return []
    prefix = lines[start][:lines[start].rindex(_TRACEBACK)]
    prefixed = bool(_RANK_PREFIX.search(prefix))
    block: List[str] = []
    for line in lines[start + 1:]:
        if prefixed and not line.startswith(prefix):
            break
        block.append(line)
        body = line[len(prefix):] if prefixed else line
        if not prefixed and body and not body[0].isspace():
            break  # an unprefixed traceback ends at its exception line
    kept = block[-limit:]
    return [lines[start]] + (["..."] if len(block) > len(kept) else []) + kept


def read_run(records: Sequence[Mapping[str, Any]], log_text: str, **meta: Any) -> Dict[str, Any]:
    """One run's record: ``meta`` (name, config, procs, exit code, ...) plus what it recorded.

    Args:
        records: the launch's ``metrics.jsonl`` records (``throughput`` and ``consistency`` are read).
        log_text: the run's console output (for the first traceback and the last lines).
        meta: copied into the record; the report uses ``name``, ``label`` (the config's short
            name), ``procs``, ``rc``, ``wall_s``, and for a resumed run ``resume_of`` (the run it
            continues) and ``resume_epoch``; ``not_started`` (why) for a run that was not launched.

    Returns:
        ``meta`` plus ``epochs``, ``iters``, ``samples_per_s`` (steady state, first epoch left out),
        ``peak_alloc_gib`` / ``peak_reserved_gib`` (per GPU), ``losses`` (epoch -> mean loss),
        ``checks`` (epoch-end consistency checks), ``ranks_agree``, ``quantized_layers``,
        ``quantized_unchanged``, ``quantized_digests`` (distinct digests seen, build included),
        ``trainable_digests`` (epoch -> digest), ``resume_digest``, ``tail`` (last log lines),
        ``error`` (:func:`first_traceback`; ``[]`` when none).
    """
    throughput = [r for r in records if r.get("event") == "throughput"]
    checks = [r for r in records if r.get("event") == "consistency"]
    epochs, resumed, built = _tagged(checks, "epoch"), _tagged(checks, "resume"), _tagged(checks, "build")
    compared = epochs + resumed
    record: Dict[str, Any] = dict(meta)
    record.update(summarize_throughput(throughput) or dict(epochs=0, iters=0, samples_per_s=None,
                                                           peak_alloc_gib=None, peak_reserved_gib=None))
    record.update(
        losses={int(r["epoch"]): r.get("loss") for r in throughput},
        checks=len(epochs),
        ranks_agree=all(c["ranks_agree"] for c in compared) if compared else None,
        quantized_layers=max([int(c["quantized_layers"]) for c in compared + built] or [0]),
        quantized_unchanged=all(c["quantized_unchanged"] for c in compared) if compared else None,
        quantized_digests=sorted({c["quantized_digest"] for c in compared + built if c.get("quantized_digest")}),
        trainable_digests={int(c["epoch"]): c["trainable_digest"] for c in epochs},
        resume_digest=resumed[-1]["trainable_digest"] if resumed else None,
        tail=log_text.strip().splitlines()[-12:],
        error=first_traceback(log_text),
    )
    return record


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return " / ".join(_fmt(v, digits) for v in value) if value else "-"
    return str(value)


def _last_loss(record: Mapping[str, Any]) -> Optional[float]:
    losses = record.get("losses") or {}
    return losses[max(losses)] if losses else None


def _final_digest(record: Mapping[str, Any]) -> Optional[str]:
    digests = record.get("trainable_digests") or {}
    return digests[max(digests)] if digests else None


def _trained(record: Mapping[str, Any]) -> Optional[bool]:
    digests = record.get("trainable_digests") or {}
    return None if len(digests) < 2 else digests[min(digests)] != digests[max(digests)]


def _resume_rows(records: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    by_name = {r["name"]: r for r in records}
    rows = []
    for r in records:
        if not r.get("resume_of") or r["resume_of"] not in by_name:
            continue
        original, epoch = by_name[r["resume_of"]], r.get("resume_epoch")
        expected = (original.get("trainable_digests") or {}).get(epoch)
        last = max(r["losses"]) if r.get("losses") else None
        final, original_final = _final_digest(r), (original.get("trainable_digests") or {}).get(last)
        rows.append(dict(
            name=r["name"], of=original["name"], epoch=epoch, loaded=r.get("resume_digest"), expected=expected,
            same=None if expected is None or r.get("resume_digest") is None else r["resume_digest"] == expected,
            ranks_agree=r.get("ranks_agree"), last_epoch=last,
            loss_resumed=r["losses"].get(last) if last is not None else None,
            loss_original=(original.get("losses") or {}).get(last) if last is not None else None,
            final_same=None if final is None or original_final is None else final == original_final,
        ))
    return rows


def _scaling_rows(records: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for one in [r for r in records if r.get("procs") == 1 and not r.get("resume_of")]:
        for many in [r for r in records if r.get("label") == one.get("label") and (r.get("procs") or 0) > 1
                     and not r.get("resume_of")]:
            s1, sn = one.get("samples_per_s"), many.get("samples_per_s")
            rows.append(dict(label=one["label"], procs=many["procs"], s1=s1, sn=sn,
                             speedup=sn / s1 if s1 and sn else None,
                             peak1=one.get("peak_alloc_gib"), peakn=many.get("peak_alloc_gib")))
    return rows


def verdicts(records: Sequence[Mapping[str, Any]]) -> List[tuple]:
    """``(check, True/False/None, detail)`` per check; None: not run or not applicable."""
    out = []
    for r in records:
        stopped = ", stopped at its time limit" if r.get("stopped") else ""
        detail = f"not started: {r['not_started']}" if r.get("not_started") else f"rc={r.get('rc')}{stopped}"
        out.append((f"{r['name']}: exit code 0", r.get("rc") == 0, detail))
        if (r.get("procs") or 0) > 1:
            out.append((f"{r['name']}: trainable weights identical on all ranks", r.get("ranks_agree"),
                        f"{r.get('checks')} epoch-end checks"))
        if r.get("quantized_layers"):
            same = r.get("quantized_unchanged") and len(r.get("quantized_digests") or []) == 1
            out.append((f"{r['name']}: quantized bytes unchanged since build", bool(same),
                        f"{r['quantized_layers']} layers, digests {r.get('quantized_digests')}"))
    for row in _resume_rows(records):
        out.append((f"{row['name']}: resumed weights equal {row['of']}'s at epoch {row['epoch']}", row["same"],
                    f"{row['loaded']} vs {row['expected']}"))
    return out


def summary_markdown(records: Sequence[Mapping[str, Any]], *, title: str, preamble: Sequence[str] = ()) -> str:
    """The Markdown report of ``records`` (from :func:`read_run`), headed by ``title`` and ``preamble`` lines."""
    lines = [f"# {title}", "", *preamble, "", "## Runs", "",
             "| run | config | procs | epochs | iterations | samples/s (steady) | peak alloc GiB per GPU "
             "| peak reserved GiB per GPU | last-epoch loss | wall s | exit |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    for r in records:
        lines.append(f"| {r['name']} | {r.get('config', '-')} | {r.get('procs')} | {r.get('epochs')} "
                     f"| {r.get('iters')} "
                     f"| {_fmt(r.get('samples_per_s'))} | {_fmt(r.get('peak_alloc_gib'))} "
                     f"| {_fmt(r.get('peak_reserved_gib'))} | {_fmt(_last_loss(r), 4)} | {_fmt(r.get('wall_s'), 0)} "
                     f"| {r.get('rc')} |")
    commands = [f"- {r['name']}: `{r['command']}`" for r in records if r.get("command")]
    if commands:
        lines += ["", "Commands:", "", *commands]
    lines += ["", "## Consistency (every epoch end)", "",
              "| run | checks | ranks agree | training moved the weights | quantized layers | quantized bytes "
              "unchanged | final trainable digest |", "| --- | ---: | --- | --- | ---: | --- | --- |"]
    for r in records:
        lines.append(f"| {r['name']} | {r.get('checks')} | {_fmt(r.get('ranks_agree'))} | {_fmt(_trained(r))} "
                     f"| {r.get('quantized_layers')} | {_fmt(r.get('quantized_unchanged'))} "
                     f"| {_final_digest(r) or '-'} |")
    resume = _resume_rows(records)
    if resume:
        lines += ["", "## Resume", "", "| run | resumes | from epoch | weights at load = original's at that epoch "
                  "| ranks agree | loss of the last epoch (resumed / original) | final weights = original's (bit for "
                  "bit; needs deterministic kernels) |", "| --- | --- | ---: | --- | --- | --- | --- |"]
        for row in resume:
            final = "yes" if row["final_same"] else "-" if row["final_same"] is None else "no"
            lines.append(f"| {row['name']} | {row['of']} | {row['epoch']} | {_fmt(row['same'])} ({row['loaded']}) "
                         f"| {_fmt(row['ranks_agree'])} | {_fmt(row['loss_resumed'], 4)} / "
                         f"{_fmt(row['loss_original'], 4)} | {final} |")
    scaling = _scaling_rows(records)
    if scaling:
        lines += ["", "## One GPU against several (same global batch)", "",
                  "| config | GPUs | samples/s, 1 GPU | samples/s, N GPUs | speed-up | peak alloc GiB, 1 GPU "
                  "| peak alloc GiB per GPU, N GPUs |", "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
        for row in scaling:
            lines.append(f"| {row['label']} | {row['procs']} | {_fmt(row['s1'])} | {_fmt(row['sn'])} "
                         f"| {_fmt(row['speedup'])} | {_fmt(row['peak1'])} | {_fmt(row['peakn'])} |")
    lines += ["", "## Verdicts", ""]
    for check, ok, detail in verdicts(records):
        lines.append(f"- {'PASS' if ok else 'not checked' if ok is None else 'FAIL'}: {check} ({detail})")
    failed = [r for r in records if r.get("rc") not in (0, None)]
    for r in failed:
        lines += ["", f"### Last lines of {r['name']} (exit {r['rc']})", ""]
        if r.get("error"):
            lines += ["First traceback:", "", "```", *r["error"], "```", "", "End of the log:", ""]
        lines += ["```", *r.get("tail", []), "```"]
    return "\n".join(lines) + "\n"
