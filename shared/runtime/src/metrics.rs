//! The node's counters and gauges as Prometheus samples, read at each scrape from what the node
//! keeps anyway (see `keel_telemetry::metrics`). Names: `keel_<subsystem>_<name>_<unit>`.

use crate::NodeStats;
use keel_telemetry::metrics::Sample;

/// The node's samples, from `stats`.
pub fn samples(stats: &NodeStats) -> Vec<Sample> {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let active = |kind: &str, n: usize| {
        Sample::gauge(
            "keel_runtime_actors_active",
            "Actors currently activated (the rest are passivated, their state on disk).",
            n as f64,
        )
        .with_label("kind", kind)
    };
    let store = &stats.store;
    let counters = [
        ("keel_store_flushes_total", "fsyncs of the store (one per log round that someone waits for).", store.flushes),
        ("keel_store_flush_waiters_total", "Durable writes served by those fsyncs.", store.waiters),
        ("keel_store_log_rounds_total", "Rounds of the partition log written.", store.rounds),
        ("keel_store_log_records_total", "Records (commits, deliveries) the log's rounds carried.", store.records),
        ("keel_store_log_writes_total", "sled key writes of the log (one per partition and round).", store.log_writes),
        ("keel_store_log_bytes_total", "Bytes appended to the partition log.", store.log_bytes),
        ("keel_store_checkpoints_total", "Checkpoints of the partition log.", store.checkpoints),
        ("keel_store_checkpoint_writes_total", "sled key writes of the checkpoints (each key once per checkpoint, and the log values dropped).", store.checkpoint_writes),
        ("keel_outbox_delivered_total", "Outbox messages delivered by the relay.", stats.outbox_delivered),
        ("keel_outbox_retries_total", "Outbox delivery attempts that failed and were retried.", stats.outbox_retried),
        ("keel_outbox_refused_total", "Outbox commands their target refused (orchestration bugs; logged).", stats.outbox_refused),
        ("keel_outbox_handed_over_total", "Outbox messages of partitions this node no longer serves, left to their new owner (who delivers them from the outbox it restored).", stats.outbox_handed_over),
        ("keel_commands_consumed_total", "Commands other nodes sent in batches, applied here.", stats.commands_consumed),
        ("keel_command_batches_sent_total", "Command batches sent to other partitions' owners and answered.", stats.command_batches_sent),
        ("keel_commands_sent_total", "Commands in the batches sent to other partitions' owners.", stats.commands_sent),
        ("keel_command_batches_stale_total", "Command batches refused because their sender's epoch for the commands' partition is older than one applied here (a stale owner).", stats.command_batches_stale),
        ("keel_wms_confirmations_applied_total", "Warehouse confirmations applied from keel.v1.wms.*.", stats.wms_applied),
        ("keel_dead_letters_total", "Messages that could not be applied and were set aside on keel.v1.dlq.*; alert on any.", stats.dead_lettered),
        ("keel_timers_fired_total", "Timers fired and handled by their entity (hold expiry, ...).", stats.timers_fired),
        ("keel_timers_failed_total", "Timer firings that failed; each is retried on a later tick.", stats.timers_failed),
        ("keel_orders_archived_total", "Closed (delivered or cancelled) orders moved to the archive.", stats.orders_archived),
        ("keel_store_dedupe_expired_total", "Ids of commands between actors forgotten after their retention (--dedupe-retention-secs).", stats.dedupe_expired),
    ];
    let gauges = [
        (
            "keel_store_uncheckpointed_keys",
            "Keys written since the last checkpoint (held in memory until it).",
            count(stats.uncheckpointed_keys),
        ),
        (
            "keel_store_disk_bytes",
            "Bytes the store occupies on disk.",
            stats.disk_bytes,
        ),
        (
            "keel_outbox_pending",
            "Outbox messages handed to the relay and not delivered yet (the delivery backlog).",
            stats.outbox_pending,
        ),
    ];
    let mut samples = vec![
        active("order", stats.active_orders),
        active("sku_location", stats.active_sku_locations),
        active("warehouse", stats.active_warehouses),
    ];
    samples.extend(
        counters
            .into_iter()
            .map(|(name, help, value)| Sample::counter(name, help, value)),
    );
    samples.extend(
        gauges
            .into_iter()
            .map(|(name, help, value)| Sample::gauge(name, help, value as f64)),
    );
    samples.extend(bus_samples(&stats.bus));
    samples
}

/// A bus' own counters (NATS reconnects, slow consumers, JetStream publishes) as samples, also
/// for a process without a node (the gateway).
pub fn bus_samples(counters: &[keel_bus::Counter]) -> Vec<Sample> {
    counters
        .iter()
        .map(|c| Sample::counter(c.name, c.help, c.value))
        .collect()
}
