"""The photos command's case options (issue 25), apart from the command itself: a trip (its options, its outputs
declared in the run's plan, its joint answer written at the end), the saliency folder and the HTML case report.
"""

from __future__ import annotations

from typing import Optional

from ..errors import InputError


def plan_trip(args, writer, plan):
    """`--trip`: the request's TripOptions, and the track's outputs declared in the run's plan (core/io/plan.py)
    before any model loads. A trip is answered over the whole run at its end, so it cannot resume half done."""
    from ..answers.trip import TripOptions
    from ..io.trip_output import plan_trip_outputs

    trip = TripOptions.make(getattr(args, "trip", False), getattr(args, "trip_speed", None),
                            getattr(args, "trip_slack", None))
    if not trip.enabled:
        return trip, []
    if getattr(args, "resume", False):
        raise InputError("a trip is answered over all its photos at once and cannot resume",
                         hint="run again without --resume (or without --trip)")
    return trip, plan_trip_outputs(writer.outputs, plan, args.layer)


def check_trip(trip, inputs) -> None:
    if trip.enabled:
        from ..answers.trip import check_trip_size

        check_trip_size(len(inputs))


def finish_trip(collector, writer, trip_outs, layer):
    """The trip's joint answer into the summary rows (the trip_* columns) and its track into the planned outputs;
    without outputs, printed. Returns the answer (the case report reads it too)."""
    from ..answers.trip import apply_to_summary
    from ..io.trip_output import write_trip

    answer = collector.solve()
    apply_to_summary(writer.summary, answer)
    write_trip(trip_outs, answer, layer)
    if not writer.outputs:
        print("trip (time order):")
        for lat, lon, source in answer.track:
            row = answer.rows[source]
            print(f"  {row['trip_order']}. {lat:9.4f} {lon:10.4f}  {row['trip_probability']:6.1%}  {source}"
                  + (f"  ({row['trip_note']})" if row.get("trip_note") else ""))
        for source, row in answer.rows.items():
            if row.get("trip_order") is None:
                print(f"  -  {source}: {row.get('trip_note') or 'answered alone'}")
    return answer


def photo_options(engine, saliency: Optional[str], report) -> object:
    """The run's answer options: the engine's, plus the saliency folder (--saliency) and, for --report, each
    answer's 90 % gallery points (its maps)."""
    from dataclasses import replace

    if not saliency and report is None:
        return None
    return replace(engine.answers, saliency_dir=saliency or None, support=report is not None)


def case_report(engine, args):
    """--report: the run's case report, fed row by row (core/io/report_html.py), written after the outputs."""
    from ..io.report_html import CaseReport

    options = {"top-k": args.top_k, "place radius km": getattr(args, "place_radius", None),
               "aoi": getattr(args, "aoi", None), "region resolution °": getattr(args, "region_res", None)}
    return CaseReport(engine, options)
