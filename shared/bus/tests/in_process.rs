//! Behaviour of the in-process bus through the `Bus` trait.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use keel_bus::{
    Bus, Error, Headers, InProcessBus, InProcessOptions, Message, SharedBus, Subscription,
};

const SHORT: Duration = Duration::from_millis(50);
const LONG: Duration = Duration::from_secs(10);

fn bus() -> InProcessBus {
    InProcessBus::new(InProcessOptions::default())
}

fn payload(n: usize) -> Bytes {
    Bytes::from(n.to_string())
}

fn number(message: &Message) -> usize {
    std::str::from_utf8(&message.payload)
        .expect("utf-8 payload")
        .parse()
        .expect("numeric payload")
}

async fn next(subscription: &mut Subscription) -> Message {
    tokio::time::timeout(LONG, subscription.next())
        .await
        .expect("a message in time")
        .expect("subscription still open")
}

/// Asserts that nothing is (or shortly becomes) available on the subscription.
async fn assert_empty(subscription: &mut Subscription) {
    assert!(
        tokio::time::timeout(SHORT, subscription.next())
            .await
            .is_err(),
        "unexpected message on {}",
        subscription.pattern()
    );
}

/// Answers every request on `pattern` with `reply:<payload>` until the subscription ends.
async fn spawn_echo(bus: &SharedBus, pattern: &str) {
    let mut requests = bus.subscribe(pattern).await.unwrap();
    let bus = bus.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let mut answer = b"reply:".to_vec();
            answer.extend_from_slice(&request.payload);
            bus.respond(&request, Headers::new(), answer.into())
                .await
                .unwrap();
        }
    });
}

#[tokio::test]
async fn publish_fans_out_to_every_matching_subscriber() {
    let bus = bus();
    let mut exact = bus.subscribe("keel.orders.created").await.unwrap();
    let mut star = bus.subscribe("keel.*.created").await.unwrap();
    let mut tail = bus.subscribe("keel.>").await.unwrap();
    let mut all = bus.subscribe(">").await.unwrap();
    let mut other = bus.subscribe("keel.orders.cancelled").await.unwrap();

    let headers = Headers::from([("trace".to_owned(), "t1".to_owned())]);
    bus.publish(
        "keel.orders.created",
        headers.clone(),
        Bytes::from_static(b"o1"),
    )
    .await
    .unwrap();

    for subscription in [&mut exact, &mut star, &mut tail, &mut all] {
        let message = next(subscription).await;
        assert_eq!(
            message,
            Message {
                subject: "keel.orders.created".to_owned(),
                reply: None,
                headers: headers.clone(),
                payload: Bytes::from_static(b"o1"),
            }
        );
    }
    assert_empty(&mut other).await;
}

#[tokio::test]
async fn wildcards_follow_nats_semantics() {
    let bus = bus();
    let mut star = bus.subscribe("a.*").await.unwrap();
    let mut tail = bus.subscribe("a.>").await.unwrap();

    for subject in ["a", "a.b", "a.b.c", "b.c"] {
        bus.publish(subject, Headers::new(), Bytes::new())
            .await
            .unwrap();
    }
    assert_eq!(next(&mut star).await.subject, "a.b");
    assert_empty(&mut star).await;
    assert_eq!(next(&mut tail).await.subject, "a.b");
    assert_eq!(next(&mut tail).await.subject, "a.b.c");
    assert_empty(&mut tail).await;
}

#[tokio::test]
async fn publishing_without_subscribers_succeeds() {
    let bus = bus();
    bus.publish("nobody.listens", Headers::new(), Bytes::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_subjects_and_patterns_are_rejected() {
    let bus = bus();
    for subject in ["", "a..b", "a.*", "a.>", "a b"] {
        let result = bus.publish(subject, Headers::new(), Bytes::new()).await;
        assert!(
            matches!(result, Err(Error::InvalidSubject(_))),
            "{subject:?}"
        );
        let result = bus
            .request(subject, Headers::new(), Bytes::new(), SHORT)
            .await;
        assert!(
            matches!(result, Err(Error::InvalidSubject(_))),
            "{subject:?}"
        );
    }
    let result = bus
        .publish_with_reply("a", "r.*", Headers::new(), Bytes::new())
        .await;
    assert!(matches!(result, Err(Error::InvalidSubject(_))));
    for pattern in ["", "a.>.b", "a..b", "a*"] {
        assert!(matches!(
            bus.subscribe(pattern).await,
            Err(Error::InvalidSubject(_))
        ));
        assert!(matches!(
            bus.queue_subscribe(pattern, "g").await,
            Err(Error::InvalidSubject(_))
        ));
    }
    for group in ["", "a group"] {
        assert!(matches!(
            bus.queue_subscribe("a", group).await,
            Err(Error::InvalidSubject(_))
        ));
    }
    assert_eq!(bus.subscription_count(), 0);
}

#[tokio::test]
async fn queue_group_delivers_each_message_to_exactly_one_member() {
    let bus = bus();
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(bus.queue_subscribe("jobs.*", "workers").await.unwrap());
    }
    let mut other_group = bus.queue_subscribe("jobs.>", "auditors").await.unwrap();
    let mut plain = bus.subscribe("jobs.*").await.unwrap();
    assert_eq!(members[0].queue_group(), Some("workers"));

    const N: usize = 300;
    for i in 0..N {
        bus.publish("jobs.run", Headers::new(), payload(i))
            .await
            .unwrap();
    }

    let mut seen = BTreeSet::new();
    for member in &mut members {
        let mut count = 0;
        while let Ok(Some(message)) = tokio::time::timeout(SHORT, member.next()).await {
            assert!(seen.insert(number(&message)), "delivered twice");
            count += 1;
        }
        assert!(count > 0, "messages must be spread over all members");
    }
    assert_eq!(seen, (0..N).collect::<BTreeSet<_>>());

    // Every other group and every plain subscriber gets its own copy of each message.
    for subscription in [&mut other_group, &mut plain] {
        for i in 0..N {
            assert_eq!(number(&next(subscription).await), i);
        }
    }
}

#[tokio::test]
async fn queue_group_prefers_members_with_room() {
    let bus = InProcessBus::new(InProcessOptions {
        subscription_capacity: 2,
        ..InProcessOptions::default()
    });
    let mut stalled = bus.queue_subscribe("jobs", "workers").await.unwrap();
    let mut active = bus.queue_subscribe("jobs", "workers").await.unwrap();
    const N: usize = 100;
    // The stalled member fills up after `capacity` messages; the rest must flow to the other
    // member instead of blocking the publisher. (While the reader has not run yet both members
    // are full, and the message must go to whichever member makes room first.)
    let reader = tokio::spawn(async move {
        for _ in 0..N - 2 {
            next(&mut active).await;
        }
        active
    });
    for i in 0..N {
        let publish = bus.publish("jobs", Headers::new(), payload(i));
        tokio::time::timeout(LONG, publish)
            .await
            .expect("not blocked")
            .unwrap();
    }
    let mut active = reader.await.unwrap();
    next(&mut stalled).await;
    next(&mut stalled).await;
    assert_empty(&mut stalled).await;
    assert_empty(&mut active).await;
}

#[tokio::test]
async fn request_reply_roundtrip() {
    let bus: SharedBus = bus().into_shared();
    spawn_echo(&bus, "svc.echo").await;
    for i in 0..100 {
        let reply = bus
            .request("svc.echo", Headers::new(), payload(i), LONG)
            .await
            .unwrap();
        assert_eq!(reply.payload, format!("reply:{i}"));
        assert!(reply.subject.starts_with("_INBOX."));
    }
}

#[tokio::test]
async fn request_reply_with_queue_group_responders() {
    let inner = bus();
    let bus: SharedBus = inner.clone().into_shared();
    for _ in 0..2 {
        let mut requests = bus.queue_subscribe("svc.>", "api").await.unwrap();
        let responder = bus.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let headers = Headers::from([("status".to_owned(), "ok".to_owned())]);
                responder
                    .respond(&request, headers, request.payload.clone())
                    .await
                    .unwrap();
            }
        });
    }
    for i in 0..50 {
        let reply = bus
            .request("svc.get", Headers::new(), payload(i), LONG)
            .await
            .unwrap();
        assert_eq!(number(&reply), i);
        assert_eq!(reply.headers.get("status").map(String::as_str), Some("ok"));
    }
    assert_eq!(inner.pending_requests(), 0);
}

#[tokio::test]
async fn reply_subscribers_see_replies_and_publish_with_reply_works() {
    // A manual reply-to flow: subscribe to a reply subject, publish with it as `reply`.
    let bus = bus();
    let mut requests = bus.subscribe("svc.manual").await.unwrap();
    let mut replies = bus.subscribe("my.replies").await.unwrap();
    bus.publish_with_reply(
        "svc.manual",
        "my.replies",
        Headers::new(),
        Bytes::from_static(b"q"),
    )
    .await
    .unwrap();
    let request = next(&mut requests).await;
    assert_eq!(request.reply.as_deref(), Some("my.replies"));
    bus.respond(&request, Headers::new(), Bytes::from_static(b"a"))
        .await
        .unwrap();
    let reply = next(&mut replies).await;
    assert_eq!(reply.subject, "my.replies");
    assert_eq!(reply.payload, "a");
}

#[tokio::test]
async fn respond_without_reply_subject_is_a_no_op() {
    let bus = bus();
    let mut all = bus.subscribe(">").await.unwrap();
    let message = Message {
        subject: "a".to_owned(),
        reply: None,
        headers: Headers::new(),
        payload: Bytes::new(),
    };
    bus.respond(&message, Headers::new(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_empty(&mut all).await;
}

#[tokio::test]
async fn request_without_subscribers_fails_with_no_responders() {
    let bus = bus();
    let _elsewhere = bus.subscribe("svc.other").await.unwrap();
    let started = std::time::Instant::now();
    let result = bus
        .request("svc.missing", Headers::new(), Bytes::new(), LONG)
        .await;
    assert_eq!(result, Err(Error::NoResponders("svc.missing".to_owned())));
    assert!(
        started.elapsed() < LONG / 2,
        "no-responders must be immediate"
    );
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test]
async fn request_without_answer_times_out_and_cleans_up() {
    let bus = bus();
    let mut silent = bus.subscribe("svc.silent").await.unwrap();
    let result = bus
        .request("svc.silent", Headers::new(), Bytes::new(), SHORT)
        .await;
    assert_eq!(result, Err(Error::Timeout("svc.silent".to_owned())));
    assert_eq!(bus.pending_requests(), 0);

    // A late answer goes nowhere and does not fail.
    let request = next(&mut silent).await;
    bus.respond(&request, Headers::new(), Bytes::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn dropped_request_cleans_up() {
    let bus = bus();
    let _silent = bus.subscribe("svc.silent").await.unwrap();
    let mut request = bus.request("svc.silent", Headers::new(), Bytes::new(), LONG);
    assert!((&mut request).now_or_never().is_none());
    assert_eq!(bus.pending_requests(), 1);
    drop(request);
    assert_eq!(bus.pending_requests(), 0);
}

#[tokio::test]
async fn payload_too_large_is_rejected() {
    let bus = InProcessBus::new(InProcessOptions {
        max_payload: 16,
        ..InProcessOptions::default()
    });
    let mut all = bus.subscribe(">").await.unwrap();
    bus.publish("a", Headers::new(), Bytes::from(vec![0; 16]))
        .await
        .unwrap();
    let result = bus
        .publish("a", Headers::new(), Bytes::from(vec![0; 17]))
        .await;
    assert_eq!(result, Err(Error::PayloadTooLarge { size: 17, max: 16 }));
    let result = bus
        .request("a", Headers::new(), Bytes::from(vec![0; 17]), SHORT)
        .await;
    assert_eq!(result, Err(Error::PayloadTooLarge { size: 17, max: 16 }));
    // Headers count too (NATS wire size): "NATS/1.0\r\n" + "k: v\r\n" + "\r\n" = 18 bytes.
    let headers = Headers::from([("k".to_owned(), "v".to_owned())]);
    let result = bus.publish("a", headers, Bytes::new()).await;
    assert_eq!(result, Err(Error::PayloadTooLarge { size: 18, max: 16 }));

    assert_eq!(next(&mut all).await.payload.len(), 16);
    assert_empty(&mut all).await;
    assert_eq!(
        Error::PayloadTooLarge { size: 17, max: 16 }.to_string(),
        "message of 17 bytes exceeds the maximum payload of 16 bytes"
    );
}

#[tokio::test]
async fn default_options_match_nats() {
    let options = InProcessOptions::default();
    assert_eq!(options.max_payload, 1024 * 1024);
    assert_eq!(options.subscription_capacity, 4096);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let bus = bus();
    let plain = bus.subscribe("svc.x").await.unwrap();
    let member = bus.queue_subscribe("svc.x", "g").await.unwrap();
    let mut kept = bus.subscribe("svc.*").await.unwrap();
    assert_eq!(bus.subscription_count(), 3);

    drop(plain);
    member.unsubscribe();
    assert_eq!(bus.subscription_count(), 1);
    bus.publish("svc.x", Headers::new(), Bytes::new())
        .await
        .unwrap();
    next(&mut kept).await;

    drop(kept);
    assert_eq!(bus.subscription_count(), 0);
    let result = bus
        .request("svc.x", Headers::new(), Bytes::new(), LONG)
        .await;
    assert_eq!(result, Err(Error::NoResponders("svc.x".to_owned())));
}

#[tokio::test]
async fn dropping_a_full_subscription_releases_a_waiting_publisher() {
    let bus = InProcessBus::new(InProcessOptions {
        subscription_capacity: 1,
        ..InProcessOptions::default()
    });
    let subscription = bus.subscribe("a").await.unwrap();
    bus.publish("a", Headers::new(), Bytes::new())
        .await
        .unwrap();
    let mut blocked = bus.publish("a", Headers::new(), Bytes::new());
    assert!(
        (&mut blocked).now_or_never().is_none(),
        "publish must wait for room"
    );
    drop(subscription);
    tokio::time::timeout(LONG, blocked)
        .await
        .expect("released")
        .unwrap();
}

#[tokio::test]
async fn fifo_order_of_10_000_messages() {
    let bus = bus();
    let mut subscription = bus.subscribe("seq").await.unwrap();
    const N: usize = 10_000;
    let reader = tokio::spawn(async move {
        for expected in 0..N {
            assert_eq!(number(&next(&mut subscription).await), expected);
        }
    });
    for i in 0..N {
        bus.publish("seq", Headers::new(), payload(i))
            .await
            .unwrap();
    }
    reader.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_order_per_publisher_with_concurrent_publishers() {
    let bus = InProcessBus::new(InProcessOptions {
        subscription_capacity: 16,
        ..InProcessOptions::default()
    });
    let mut subscription = bus.subscribe("seq.*").await.unwrap();
    const PUBLISHERS: usize = 4;
    const N: usize = 2_500;
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let bus = bus.clone();
        publishers.push(tokio::spawn(async move {
            let subject = format!("seq.p{p}");
            for i in 0..N {
                bus.publish(&subject, Headers::new(), payload(i))
                    .await
                    .unwrap();
            }
        }));
    }
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..PUBLISHERS * N {
        let message = next(&mut subscription).await;
        let n = number(&message);
        if let Some(previous) = last.insert(message.subject.clone(), n) {
            assert_eq!(n, previous + 1, "out of order from {}", message.subject);
        } else {
            assert_eq!(n, 0);
        }
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    assert!(last.values().all(|&n| n == N - 1));
}

#[tokio::test]
async fn full_subscription_applies_backpressure_instead_of_dropping() {
    let bus = InProcessBus::new(InProcessOptions {
        subscription_capacity: 2,
        ..InProcessOptions::default()
    });
    let mut subscription = bus.subscribe("bp").await.unwrap();

    // Two messages fill the buffer; the third publish cannot complete until the reader reads.
    bus.publish("bp", Headers::new(), payload(0)).await.unwrap();
    bus.publish("bp", Headers::new(), payload(1)).await.unwrap();
    let mut third = bus.publish("bp", Headers::new(), payload(2));
    assert!(
        (&mut third).now_or_never().is_none(),
        "publish must wait, not drop"
    );
    assert_eq!(number(&next(&mut subscription).await), 0);
    tokio::time::timeout(LONG, third)
        .await
        .expect("room again")
        .unwrap();

    // A slow reader: every message still arrives, in order.
    const N: usize = 50;
    let reader = tokio::spawn(async move {
        let mut received = Vec::new();
        while received.len() < N + 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            received.push(number(&next(&mut subscription).await));
        }
        received
    });
    for i in 3..N + 3 {
        bus.publish("bp", Headers::new(), payload(i)).await.unwrap();
    }
    let received = reader.await.unwrap();
    assert_eq!(received, (1..N + 3).collect::<Vec<_>>());
}

#[tokio::test]
async fn slow_subscriber_does_not_delay_delivery_to_others() {
    let bus = InProcessBus::new(InProcessOptions {
        subscription_capacity: 1,
        ..InProcessOptions::default()
    });
    let mut slow = bus.subscribe("x").await.unwrap();
    let mut fast = bus.subscribe("x").await.unwrap();
    bus.publish("x", Headers::new(), payload(0)).await.unwrap();
    assert_eq!(number(&next(&mut fast).await), 0);
    // `slow` is full: this publish waits, but `fast` already has its copy.
    let mut blocked = bus.publish("x", Headers::new(), payload(1));
    assert!((&mut blocked).now_or_never().is_none());
    assert_eq!(number(&next(&mut fast).await), 1);
    assert_eq!(number(&next(&mut slow).await), 0);
    tokio::time::timeout(LONG, blocked).await.unwrap().unwrap();
    assert_eq!(number(&next(&mut slow).await), 1);
}

#[tokio::test]
async fn works_across_runtimes_and_threads() {
    let bus: SharedBus = bus().into_shared();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();

    // A subscriber and responder on a plain thread with its own current-thread runtime (like an
    // actix arbiter).
    let remote = bus.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut events = remote.subscribe("events.>").await.unwrap();
            let mut requests = remote.subscribe("rpc.double").await.unwrap();
            ready_tx.send(()).unwrap();
            let mut events_seen = Vec::new();
            let mut requests_seen = 0;
            while events_seen.len() < 1_000 || requests_seen < 100 {
                tokio::select! {
                    Some(event) = events.next() => events_seen.push(number(&event)),
                    Some(request) = requests.next() => {
                        requests_seen += 1;
                        let answer = payload(number(&request) * 2);
                        remote.respond(&request, Headers::new(), answer).await.unwrap();
                    }
                }
            }
            events_seen
        })
    });
    tokio::task::spawn_blocking(move || ready_rx.recv().unwrap())
        .await
        .unwrap();

    // Publisher and requester on this (test) runtime.
    for i in 0..1_000 {
        bus.publish("events.created", Headers::new(), payload(i))
            .await
            .unwrap();
    }
    for i in 0..100 {
        let reply = bus
            .request("rpc.double", Headers::new(), payload(i), LONG)
            .await
            .unwrap();
        assert_eq!(number(&reply), i * 2);
    }
    let events = tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(events, (0..1_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn close_ends_subscriptions_and_fails_operations() {
    let bus = bus();
    let mut subscription = bus.subscribe("a").await.unwrap();
    let _silent = bus.subscribe("svc").await.unwrap();
    bus.publish("a", Headers::new(), payload(1)).await.unwrap();
    let waiting = tokio::spawn({
        let bus = bus.clone();
        async move { bus.request("svc", Headers::new(), Bytes::new(), LONG).await }
    });
    while bus.pending_requests() == 0 {
        tokio::task::yield_now().await;
    }

    bus.close();
    assert!(bus.is_closed());
    assert_eq!(waiting.await.unwrap(), Err(Error::Closed));
    // Buffered messages are still delivered, then the stream ends.
    assert_eq!(number(&next(&mut subscription).await), 1);
    assert!(subscription.next().await.is_none());
    assert_eq!(
        bus.publish("a", Headers::new(), Bytes::new()).await,
        Err(Error::Closed)
    );
    assert!(matches!(bus.subscribe("a").await, Err(Error::Closed)));
    assert_eq!(
        bus.request("a", Headers::new(), Bytes::new(), SHORT).await,
        Err(Error::Closed)
    );
}

#[tokio::test]
async fn many_requests_complete() {
    let inner = bus();
    let bus: SharedBus = inner.clone().into_shared();
    spawn_echo(&bus, "svc.load").await;
    const N: usize = 10_000;
    let started = std::time::Instant::now();
    for i in 0..N {
        let reply = bus
            .request("svc.load", Headers::new(), payload(i), LONG)
            .await
            .unwrap();
        assert_eq!(reply.payload.len(), "reply:".len() + i.to_string().len());
    }
    let rate = N as f64 / started.elapsed().as_secs_f64();
    println!("{N} sequential requests at {rate:.0} requests/s");
    assert_eq!(inner.pending_requests(), 0);
}

#[test]
fn subscription_wraps_foreign_streams() {
    let message = Message {
        subject: "a".to_owned(),
        reply: None,
        headers: Headers::new(),
        payload: Bytes::new(),
    };
    let mut subscription = Subscription::from_stream(
        "a.>",
        Some("g"),
        futures::stream::iter(vec![message.clone()]),
    );
    assert_eq!(subscription.pattern(), "a.>");
    assert_eq!(subscription.queue_group(), Some("g"));
    assert_eq!(
        futures::executor::block_on(subscription.next()),
        Some(message)
    );
    assert_eq!(futures::executor::block_on(subscription.next()), None);
}

#[test]
fn bus_is_object_safe_and_shareable() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SharedBus>();
    assert_send_sync::<InProcessBus>();
    fn assert_send<T: Send>(_: &T) {}
    let bus = bus();
    assert_send(&bus.publish("a", Headers::new(), Bytes::new()));
    assert_send(&bus.request("a", Headers::new(), Bytes::new(), SHORT));
}
