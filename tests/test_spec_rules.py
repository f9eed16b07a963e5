"""Where each rule of SPEC §1.3 to §1.7 and §2 is tested (issue 3: every rule has a time-frozen
test stating the expected times and values).

`RULES` quotes the SPEC's own words and names the tests that show them. Two checks keep the
table honest: every test it names exists, and (where the SPEC is beside the checkout) every
quotation is in the SPEC word for word, so an edit of either side shows here.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "SPEC.md"

E = "tests/engine/"
RULES: list[tuple[str, str, list[str]]] = [
    # §1.3: the statements that act at run time
    ("1.3", "enrol a subscriber who is not enrolled yet when this event arrives", [
        E + "test_stages.py::test_enrolment_enters_the_start_stage_at_the_entry_event",
        E + "test_stages.py::test_a_second_entry_event_does_not_enrol_twice"]),
    ("1.3", "end the enrolment; pending messages are cancelled", [
        E + "test_stages.py::test_exit_ends_the_enrolment_and_cancels_pending_sends",
        E + "test_sending.py::test_exit_cancels_a_postponed_send"]),
    ("1.3", "the stage a new enrolment starts in", [
        E + "test_stages.py::test_enrolment_enters_the_start_stage_at_the_entry_event"]),
    ("1.3", "used for subscribers who have no `timezone` attribute", [
        E + "test_sending.py::test_the_subscribers_own_time_zone_decides_quiet_hours"]),
    ("1.3", "a send falling inside is postponed to the end of the window; the window may cross "
            "midnight", [
        E + "test_sending.py::test_quiet_hours_across_midnight_postpone_to_the_local_morning",
        E + "test_sending.py::test_a_send_outside_quiet_hours_goes_at_once",
        E + "test_timing.py::test_quiet_hours_across_midnight",
        E + "test_timing.py::test_quiet_hours_within_one_day"]),
    ("1.3", "a send is postponed until it fits every window; counts every message the "
            "subscriber received on that channel, from any workflow", [
        E + "test_sending.py::test_caps_count_every_message_on_the_channel_from_any_workflow",
        E + "test_timing.py::test_several_caps_defer_to_the_strictest",
        E + "test_oracle.py::test_caps_count_every_workflows_sends"]),
    ("1.3", "add a tag to the subscriber when the event arrives", [
        E + "test_stages.py::test_go_when_reads_scores_attributes_and_tags",
        E + "test_stages.py::test_two_workflows_run_side_by_side_and_share_tags"]),
    # §1.4 scores
    ("1.4", "each matching event adds N points", [
        E + "test_scoring.py::test_each_matching_rule_adds_its_points_in_written_order"]),
    ("1.4", "the points that this rule adds within any rolling PERIOD never exceed M (an event "
            "that would exceed it adds only what is left)", [
        E + "test_scoring.py::test_max_per_period_adds_only_what_is_left_and_then_nothing",
        E + "test_scoring.py::test_max_on_a_negative_rule_caps_the_points_it_takes_away",
        E + "test_scoring.py::test_the_max_window_survives_between_batches"]),
    ("1.4", "adds N while COND holds; re-evaluated when attributes change", [
        E + "test_scoring.py::test_fit_rules_are_evaluated_for_a_new_subscriber",
        E + "test_scoring.py::test_fit_rules_follow_attribute_changes_both_ways"]),
    ("1.4", "every event contribution loses P% of its value for each full DURATION since it "
            "was earned", [
        E + "test_scoring.py::test_decay_follows_the_formula_at_each_full_period",
        E + "test_scoring.py::test_each_contribution_decays_from_its_own_age",
        E + "test_oracle.py::test_score_records_are_the_specs_arithmetic"]),
    ("1.4", "fit rules do not decay", [
        E + "test_scoring.py::test_fit_rules_do_not_decay"]),
    ("1.4", "A workflow's scores count every event of the subscriber, enrolled or not; the "
            "entry event is scored before the enrolment.", [
        E + "test_scoring.py::test_scores_count_events_before_enrolment_and_the_entry_event_"
            "first"]),
    ("1.4", "All matching rules of an event apply", [
        E + "test_scoring.py::test_each_matching_rule_adds_its_points_in_written_order"]),
    ("1.4", "it may be negative; it starts at 0", [
        E + "test_scoring.py::test_scores_may_go_negative_and_start_at_zero"]),
    ("1.4", "Every change is recorded in a score ledger with the rule that caused it (file, "
            "line), so that a score can always be explained.", [
        E + "test_scoring.py::test_the_ledger_explains_every_score"]),
    # §1.5 stages
    ("1.5", "run when the subscriber enters the stage", [
        E + "test_stages.py::test_entering_runs_on_enter_then_starts_timers_then_tries_when"]),
    ("1.5", "run once, DURATION after entering the stage; cancelled if EVENT arrived since "
            "entering", [
        E + "test_stages.py::test_after_runs_once_and_every_runs_at_nominal_times_n_times",
        E + "test_stages.py::test_after_unless_is_cancelled_by_the_event_since_entering",
        E + "test_stages.py::test_after_unless_ignores_the_event_before_entering"]),
    ("1.5", "run every DURATION after entering (first at entry + DURATION), at most N times if "
            "given", [
        E + "test_stages.py::test_after_runs_once_and_every_runs_at_nominal_times_n_times",
        E + "test_stages.py::test_every_without_a_count_goes_on_while_in_the_stage"]),
    ("1.5", "move when COND holds; COND may use score names, attribute names and "
            "`has tag \"T\"`", [
        E + "test_stages.py::test_go_when_reads_scores_attributes_and_tags"]),
    ("1.5", "move when such an event arrives while in this stage", [
        E + "test_stages.py::test_go_on_event_with_where"]),
    ("1.5", "move DURATION after entering", [
        E + "test_stages.py::test_go_after_moves_at_the_exact_instant"]),
    ("1.5", "move when no event at all has arrived from the subscriber for DURATION (counted "
            "from the later of stage entry and the last event)", [
        E + "test_stages.py::test_idle_counts_from_the_later_of_entry_and_the_last_event",
        E + "test_stages.py::test_idle_from_entry_when_the_last_event_is_older"]),
    ("1.5", "The `with` values are template variables of that send.", [
        E + "test_sending.py::test_templates_see_subscriber_scores_stage_tags_workflow_and_"
            "with_values"]),
    ("1.5", "An event is first scored and tagged, then the stage's transitions are evaluated.", [
        E + "test_stages.py::test_go_when_reads_scores_attributes_and_tags",
        E + "test_oracle.py::test_stage_moves_and_timed_steps_are_the_specs"]),
    ("1.5", "Transitions of a stage are tried in the order written; the first that holds wins.", [
        E + "test_stages.py::test_transitions_are_tried_in_written_order_first_wins"]),
    ("1.5", "They are evaluated after each event of the subscriber, at every due time, and at "
            "score-decay boundaries.", [
        E + "test_stages.py::test_transitions_are_evaluated_at_decay_boundaries",
        E + "test_stages.py::test_a_due_step_and_a_timed_move_at_one_instant_run_in_planned_"
            "order"]),
    ("1.5", "so one event can carry a subscriber across several stages (never looping: each "
            "stage at most once per evaluation)", [
        E + "test_stages.py::test_one_event_carries_across_several_stages_running_each_entry",
        E + "test_stages.py::test_chaining_never_loops",
        E + "test_stages.py::test_a_transition_to_its_own_stage_never_moves_and_shadows_those_"
            "after_it"]),
    ("1.5", "Leaving a stage cancels its pending `after` and `every` steps.", [
        E + "test_stages.py::test_leaving_a_stage_cancels_its_pending_steps"]),
    ("1.5", "Enrolment puts the subscriber in the start stage at the moment of the entry event", [
        E + "test_stages.py::test_enrolment_enters_the_start_stage_at_the_entry_event"]),
    # §1.5a precise rules
    ("1.5a", "Events are processed in order of `at` (equal times keep file or arrival order).", [
        E + "test_events.py::test_events_are_processed_in_order_of_at_whatever_the_input_order",
        E + "test_events.py::test_equal_times_keep_the_input_order"]),
    ("1.5a", "At one instant, events are processed before the due steps of that instant.", [
        E + "test_events.py::test_at_one_instant_events_come_before_due_steps",
        E + "test_stages.py::test_an_event_at_a_timed_moves_instant_comes_first_and_does_not_"
            "move",
        E + "test_simulate.py::test_at_one_instant_every_subscribers_events_come_before_due_"
            "work"]),
    ("1.5a", "First its `on enter` actions run, in written order; then its `after`, `every` "
             "and `go to … after` / `idle` timers start; then its `go to … when` transitions "
             "are tried.", [
        E + "test_stages.py::test_entering_runs_on_enter_then_starts_timers_then_tries_when"]),
    ("1.5a", "Each matching rule of an event makes its own ledger entry and timeline record, in "
             "written order.", [
        E + "test_scoring.py::test_each_matching_rule_adds_its_points_in_written_order"]),
    ("1.5a", "A rule whose `max` leaves nothing to add makes no record.", [
        E + "test_scoring.py::test_max_per_period_adds_only_what_is_left_and_then_nothing"]),
    ("1.5a", "Decay at one instant makes one record per score (the sum of its contributions' "
             "losses).", [
        E + "test_scoring.py::test_decay_at_one_instant_is_one_record_per_score",
        E + "test_scoring.py::test_a_decay_step_whose_losses_cancel_out_makes_no_record"]),
    ("1.5a", "Totals and deltas are printed as integers when whole, otherwise as decimals (not "
             "rounded).", [
        E + "test_scoring.py::test_decay_follows_the_formula_at_each_full_period",
        E + "test_oracle.py::test_score_records_are_the_specs_arithmetic"]),
    ("1.5a", "A window of length W at time t counts what happened in (t \u2212 W, t]: something "
             "exactly W earlier no longer counts.", [
        E + "test_timing.py::test_cap_window_excludes_what_is_exactly_w_earlier",
        E + "test_scoring.py::test_max_window_is_rolling_and_excludes_exactly_one_period_"
            "earlier"]),
    ("1.5a", "At the earliest instant at or after its due time that is outside quiet hours and "
             "fits every frequency cap of its channel.", [
        E + "test_timing.py::test_send_time_is_the_earliest_allowed_instant",
        E + "test_timing.py::test_cap_and_quiet_hours_together",
        E + "test_sending.py::test_a_cap_that_frees_a_send_inside_quiet_hours_waits_for_the_"
            "morning",
        E + "test_oracle.py::test_capped_drips_go_out_as_the_spec_says"]),
    ("1.5a", "Several postponed sends of one subscriber go out in the order they were due.", [
        E + "test_sending.py::test_caps_defer_several_queued_sends_in_the_order_they_were_due",
        E + "test_due_order.py::test_postponed_work_due_at_the_same_instant_keeps_its_place"]),
    ("1.5a", "A postponed send stays tied to its stage step: if the subscriber leaves that stage "
             "or exits before it goes out, it is cancelled.", [
        E + "test_sending.py::test_a_postponed_send_is_cancelled_when_the_stage_is_left",
        E + "test_sending.py::test_exit_cancels_a_postponed_send",
        E + "test_sending.py::test_a_postponed_send_keeps_its_place_later_times_do_not_shift"]),
    ("1.5a", "If quiet hours end at a local time that does not exist (a daylight-saving gap), "
             "the send goes at the first valid instant after it.", [
        E + "test_sending.py::test_quiet_hours_ending_in_a_daylight_saving_gap",
        E + "test_sending.py::test_quiet_hours_across_the_spring_daylight_saving_change",
        E + "test_sending.py::test_quiet_hours_across_the_autumn_daylight_saving_change",
        E + "test_timing.py::test_quiet_hours_ending_in_a_dst_gap_go_at_the_first_valid_"
            "instant"]),
    ("1.5a", "Checked in this order, the first failure is the reason", [
        E + "test_sending.py::test_skip_reasons_no_consent_and_no_address",
        E + "test_sending.py::test_no_consent_is_checked_before_the_address",
        E + "test_sending.py::test_consent_is_checked_before_rendering",
        E + "test_oracle.py::test_sends_and_skip_reasons_follow_consent_address_and_rendering"]),
    ("1.5a", "A skip is recorded and never retried.", [
        E + "test_sending.py::test_a_template_that_fails_is_a_render_error_and_is_never_"
            "retried"]),
    ("1.5a", "no consent, quiet hours or caps apply to them", [
        E + "test_sending.py::test_webhooks_ignore_consent_quiet_hours_and_caps"]),
    ("1.5a", "rendering fails unless the template gives a default", [
        E + "test_sending.py::test_a_template_that_fails_is_a_render_error_and_is_never_"
            "retried",
        E + "test_sending.py::test_an_attribute_set_to_null_is_undefined_and_nothing_prints_"
            "none"]),
    ("1.5a", "After an exit, a later entry event enrols the subscriber again, at the start "
             "stage.", [
        E + "test_stages.py::test_re_entry_after_exit_starts_again_at_the_start_stage",
        E + "test_stages.py::test_an_exit_and_a_re_entry_in_one_batch_of_events"]),
    ("1.5a", "a variant declared with a region (`lang \"pt-BR\"`) is preferred when it matches "
             "exactly", [
        E + "test_sending.py::test_the_locale_picks_the_variant",
        E + "test_sending.py::test_locales_as_systems_and_browsers_write_them"]),
    # §1.6 conditions
    ("1.6", "`and`, `or`, `not`, parentheses; comparisons `== != < <= > >=`; `NAME in [v, …]`;", [
        "tests/dsl/test_conditions.py::test_evaluate",
        "tests/dsl/test_conditions.py::test_has_tag"]),
    ("1.6", "In `when`, a name is a score of the workflow if one is declared with that name, "
            "otherwise a subscriber attribute.", [
        E + "test_stages.py::test_go_when_reads_scores_attributes_and_tags"]),
    ("1.6", "A missing property or attribute makes the comparison false (never an error at run "
            "time).", [
        E + "test_scoring.py::test_where_filters_on_event_properties_and_a_missing_property_"
            "is_false",
        "tests/dsl/test_conditions.py::test_not_a_number_compares_false_instead_of_failing"]),
    # §1.7 messages
    ("1.7", "The `lang` variant is chosen by the subscriber's `locale` attribute (`pl-PL` "
            "matches `pl`), else the variant without `lang`.", [
        E + "test_sending.py::test_the_locale_picks_the_variant",
        E + "test_sending.py::test_no_variant_for_the_locale_is_a_skip"]),
    ("1.7", "`ttl DURATION` (default", [
        E + "test_sending.py::test_a_push_delivery_keeps_its_transport_settings"]),
    ("1.7", "Fields are Jinja2 templates rendered in a sandbox with undefined names as errors.", [
        E + "test_sending.py::test_a_template_that_fails_is_a_render_error_and_is_never_"
            "retried",
        "tests/dsl/test_template_limits.py::test_a_runaway_template_is_an_error_of_its_message"]),
    ("1.7", "`subscriber` (id and attributes), `scores` (name → value), `stage`, `tags`, "
            "`workflow`, and the `with` values", [
        E + "test_sending.py::test_templates_see_subscriber_scores_stage_tags_workflow_and_"
            "with_values"]),
    ("1.7", "webhook: `url` (required), `body` (JSON after rendering).", [
        E + "test_sending.py::test_a_webhook_body_must_be_json_after_rendering",
        E + "test_sending.py::test_text_in_a_webhook_body_is_escaped_for_json"]),
    # §2 events and subscribers
    ("2", "the same id twice is stored once", [
        E + "test_events.py::test_the_same_event_id_is_stored_once"]),
    ("2", "records consent for those channels, with time and source", [
        E + "test_events.py::test_subscribed_records_consent_with_time_and_source"]),
    ("2", "withdraws consent (all channels when absent)", [
        E + "test_events.py::test_subscribed_records_consent_with_time_and_source",
        E + "test_sending.py::test_consent_withdrawn_mid_journey",
        E + "test_sending.py::test_consent_withdrawn_while_a_send_waits_skips_it_when_it_would_"
            "go"]),
    ("2", "properties are merged into the subscriber's attributes", [
        E + "test_events.py::test_attributes_events_merge"]),
    ("2", "push needs a push consent and at least one live push subscription (in the "
          "simulator, consent alone)", [
        E + "test_sending.py::test_push_needs_a_live_subscription_outside_the_simulator"]),
    ("2", "email needs email consent and an address", [
        E + "test_sending.py::test_skip_reasons_no_consent_and_no_address",
        E + "test_sending.py::test_an_address_from_the_subscribed_event_or_attributes"]),
]


@cache
def _tests_in(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(node.name for node in tree.body
                     if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_test_the_table_names_exists() -> None:
    missing = [test for _, _, tests in RULES for test in tests
               if test.split("::")[1] not in _tests_in(test.split("::")[0])]
    assert missing == []


def test_every_rule_the_table_quotes_is_in_the_spec_word_for_word() -> None:
    if not SPEC.exists():
        pytest.skip("../shared/SPEC.md is not beside this checkout")
    spec = _flat(SPEC.read_text(encoding="utf-8"))
    assert [quote for _, quote, _ in RULES if _flat(quote) not in spec] == []
