//! The node's metrics in Prometheus text format. Names: `keel_<subsystem>_<name>_<unit>`.

use crate::NodeStats;
use std::fmt::Write;

/// Gauge: activated actors, by `kind`.
pub const ACTORS_ACTIVE: &str = "keel_runtime_actors_active";
/// Counter: fsyncs (group commits).
pub const STORE_FLUSHES: &str = "keel_store_flushes_total";
/// Counter: durable writes served by those fsyncs.
pub const STORE_FLUSH_WAITERS: &str = "keel_store_flush_waiters_total";
/// Counter: rounds of the partition log written.
pub const STORE_LOG_ROUNDS: &str = "keel_store_log_rounds_total";
/// Counter: records (commits, deliveries) the log's rounds carried.
pub const STORE_LOG_RECORDS: &str = "keel_store_log_records_total";
/// Counter: sled key writes of the log (one per partition and round).
pub const STORE_LOG_WRITES: &str = "keel_store_log_writes_total";
/// Counter: bytes appended to the log.
pub const STORE_LOG_BYTES: &str = "keel_store_log_bytes_total";
/// Counter: checkpoints of the log.
pub const STORE_CHECKPOINTS: &str = "keel_store_checkpoints_total";
/// Counter: sled key writes of the checkpoints.
pub const STORE_CHECKPOINT_WRITES: &str = "keel_store_checkpoint_writes_total";
/// Gauge: keys written since the last checkpoint (in memory until it).
pub const STORE_UNCHECKPOINTED: &str = "keel_store_uncheckpointed_keys";
/// Gauge: bytes of the store on disk.
pub const STORE_DISK: &str = "keel_store_disk_bytes";
/// Counter: outbox messages delivered.
pub const OUTBOX_DELIVERED: &str = "keel_outbox_delivered_total";
/// Gauge: outbox messages waiting for delivery.
pub const OUTBOX_PENDING: &str = "keel_outbox_pending";
/// Counter: outbox deliveries retried.
pub const OUTBOX_RETRIED: &str = "keel_outbox_retries_total";
/// Counter: outbox commands refused by their target.
pub const OUTBOX_REFUSED: &str = "keel_outbox_refused_total";
/// Counter: commands other nodes sent in batches, applied here.
pub const COMMANDS_CONSUMED: &str = "keel_commands_consumed_total";
/// Counter: command batches sent to other partitions' owners and answered.
pub const COMMAND_BATCHES_SENT: &str = "keel_command_batches_sent_total";
/// Counter: the commands in those batches.
pub const COMMANDS_SENT: &str = "keel_commands_sent_total";
/// Counter: command batches refused because they came from a stale owner.
pub const COMMAND_BATCHES_STALE: &str = "keel_command_batches_stale_total";
/// Counter: outbox entries left to a partition's new owner.
pub const OUTBOX_HANDED_OVER: &str = "keel_outbox_handed_over_total";
/// Counter: warehouse confirmations applied from `keel.v1.wms.*`.
pub const WMS_APPLIED: &str = "keel_wms_confirmations_applied_total";
/// Counter: messages set aside as dead letters.
pub const DEAD_LETTERS: &str = "keel_dead_letters_total";
/// Timers fired and handled by their entity (a hold's expiry, …).
pub const TIMERS_FIRED: &str = "keel_timers_fired_total";
/// Timer firings that failed (each is retried on a later tick).
pub const TIMERS_FAILED: &str = "keel_timers_failed_total";
/// Closed orders moved to the archive.
pub const ORDERS_ARCHIVED: &str = "keel_orders_archived_total";
/// Ids of commands between actors forgotten after their retention.
pub const DEDUPE_EXPIRED: &str = "keel_store_dedupe_expired_total";

/// Renders `stats` as Prometheus text.
pub fn render(stats: &NodeStats) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let active = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    metric(
        ACTORS_ACTIVE,
        "gauge",
        "Actors currently activated (the rest are passivated, their state on disk).",
        &[
            ("{kind=\"order\"}", active(stats.active_orders)),
            (
                "{kind=\"sku_location\"}",
                active(stats.active_sku_locations),
            ),
            ("{kind=\"warehouse\"}", active(stats.active_warehouses)),
        ],
    );
    let store = &stats.store;
    let counters = [
        (STORE_FLUSHES, "fsyncs of the store (one per log round that someone waits for).", store.flushes),
        (STORE_FLUSH_WAITERS, "Durable writes served by those fsyncs.", store.waiters),
        (STORE_LOG_ROUNDS, "Rounds of the partition log written.", store.rounds),
        (STORE_LOG_RECORDS, "Records (commits, deliveries) the log's rounds carried.", store.records),
        (STORE_LOG_WRITES, "sled key writes of the log (one per partition and round).", store.log_writes),
        (STORE_LOG_BYTES, "Bytes appended to the partition log.", store.log_bytes),
        (STORE_CHECKPOINTS, "Checkpoints of the partition log.", store.checkpoints),
        (STORE_CHECKPOINT_WRITES, "sled key writes of the checkpoints (each key once per checkpoint, and the log values dropped).", store.checkpoint_writes),
    ];
    for (name, help, value) in counters {
        metric(name, "counter", help, &[("", value)]);
    }
    metric(
        STORE_UNCHECKPOINTED,
        "gauge",
        "Keys written since the last checkpoint (held in memory until it).",
        &[("", active(stats.uncheckpointed_keys))],
    );
    metric(
        STORE_DISK,
        "gauge",
        "Bytes the store occupies on disk.",
        &[("", stats.disk_bytes)],
    );
    metric(
        OUTBOX_DELIVERED,
        "counter",
        "Outbox messages delivered by the relay.",
        &[("", stats.outbox_delivered)],
    );
    metric(
        OUTBOX_PENDING,
        "gauge",
        "Outbox messages handed to the relay and not delivered yet (the delivery backlog).",
        &[("", stats.outbox_pending)],
    );
    metric(
        OUTBOX_RETRIED,
        "counter",
        "Outbox delivery attempts that failed and were retried.",
        &[("", stats.outbox_retried)],
    );
    metric(
        OUTBOX_REFUSED,
        "counter",
        "Outbox commands their target refused (orchestration bugs; logged).",
        &[("", stats.outbox_refused)],
    );
    metric(
        OUTBOX_HANDED_OVER,
        "counter",
        "Outbox messages of partitions this node no longer serves, left to their new owner (who delivers them from the outbox it restored).",
        &[("", stats.outbox_handed_over)],
    );
    metric(
        COMMANDS_CONSUMED,
        "counter",
        "Commands other nodes sent in batches, applied here.",
        &[("", stats.commands_consumed)],
    );
    metric(
        COMMAND_BATCHES_SENT,
        "counter",
        "Command batches sent to other partitions' owners and answered.",
        &[("", stats.command_batches_sent)],
    );
    metric(
        COMMANDS_SENT,
        "counter",
        "Commands in the batches sent to other partitions' owners.",
        &[("", stats.commands_sent)],
    );
    metric(
        COMMAND_BATCHES_STALE,
        "counter",
        "Command batches refused because their sender's epoch for the commands' partition is older than one applied here (a stale owner).",
        &[("", stats.command_batches_stale)],
    );
    metric(
        WMS_APPLIED,
        "counter",
        "Warehouse confirmations applied from keel.v1.wms.*.",
        &[("", stats.wms_applied)],
    );
    metric(
        DEAD_LETTERS,
        "counter",
        "Messages that could not be applied and were set aside on keel.v1.dlq.*; alert on any.",
        &[("", stats.dead_lettered)],
    );
    metric(
        TIMERS_FIRED,
        "counter",
        "Timers fired and handled by their entity (hold expiry, ...).",
        &[("", stats.timers_fired)],
    );
    metric(
        TIMERS_FAILED,
        "counter",
        "Timer firings that failed; each is retried on a later tick.",
        &[("", stats.timers_failed)],
    );
    metric(
        ORDERS_ARCHIVED,
        "counter",
        "Closed (delivered or cancelled) orders moved to the archive.",
        &[("", stats.orders_archived)],
    );
    metric(
        DEDUPE_EXPIRED,
        "counter",
        "Ids of commands between actors forgotten after their retention (--dedupe-retention-secs).",
        &[("", stats.dedupe_expired)],
    );
    out.push_str(&render_counters(&stats.bus));
    out
}

/// Renders counters (a bus' own, the cluster's) as Prometheus text, also for a process without a node.
pub fn render_counters(counters: &[keel_bus::Counter]) -> String {
    let mut out = String::new();
    for counter in counters {
        let (name, help, value) = (counter.name, counter.help, counter.value);
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out
}
