//! [`InProcessBus`]: a [`Bus`] whose subscribers live in the same process.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::subject::{matches, validate_group, validate_pattern, validate_subject};
use crate::{BoxFuture, Bus, Error, Headers, Message, SharedBus, Subscription};

/// Configuration of an [`InProcessBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InProcessOptions {
    /// Largest accepted message, in bytes: payload plus NATS-encoded headers (default 1 MiB, the
    /// NATS server default), so that whatever the in-process bus accepts also fits on NATS.
    pub max_payload: usize,
    /// Buffer size of every subscription, in messages (default 4096). Publishers wait when a
    /// subscription's buffer is full. Values below 1 are treated as 1.
    pub subscription_capacity: usize,
}

impl Default for InProcessOptions {
    fn default() -> Self {
        Self {
            max_payload: 1024 * 1024,
            subscription_capacity: 4096,
        }
    }
}

/// A [`Bus`] connecting publishers and subscribers inside one process.
///
/// It is a cheap, cloneable handle (clones share the same subscriptions). It uses only
/// runtime-agnostic primitives and spawns no tasks, so publishers and subscribers may live on
/// different tokio runtimes and threads (e.g. actix arbiters and the HTTP server). Every
/// subscription is a bounded channel ([`InProcessOptions::subscription_capacity`]); publishing
/// waits for buffer space instead of dropping messages.
///
/// Replies to requests are routed like nats.rs does: every bus has one random inbox prefix
/// (`_INBOX.<random>.`) and each request gets the reply subject `<prefix><id>`; publishing to such
/// a subject completes the waiting request directly, without a subscription per request.
#[derive(Clone)]
pub struct InProcessBus {
    shared: Arc<Shared>,
}

struct Shared {
    max_payload: usize,
    capacity: usize,
    closed: AtomicBool,
    registry: RwLock<Registry>,
    /// `_INBOX.<random>.`: reply subjects of requests made through this bus.
    inbox_prefix: String,
    /// Requests waiting for a reply, by id (the last token of their reply subject).
    pending: Mutex<HashMap<u64, oneshot::Sender<Message>>>,
    /// Source of subscription and request ids.
    next_id: AtomicU64,
}

#[derive(Default)]
struct Registry {
    plain: Vec<Entry>,
    groups: Vec<QueueGroup>,
}

struct Entry {
    id: u64,
    pattern: String,
    sender: mpsc::Sender<Message>,
}

/// Members of one queue group. As in NATS, membership is by group name: the members whose
/// pattern matches a message's subject share that message.
struct QueueGroup {
    name: String,
    members: Vec<Entry>,
    /// Round-robin cursor.
    next: AtomicUsize,
}

impl QueueGroup {
    /// Picks the member receiving a message on `subject`: round robin over the matching members,
    /// skipping ahead to the next one with free buffer space if the chosen one is full. When all
    /// are full, the message goes to whichever member makes room first.
    fn pick(&self, subject: &str) -> Option<Target> {
        let eligible = || {
            self.members
                .iter()
                .filter(|m| matches(&m.pattern, subject) && !m.sender.is_closed())
        };
        let count = eligible().count();
        if count == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let mut first_with_room: Option<(usize, &mpsc::Sender<Message>)> = None;
        for (index, member) in eligible().enumerate() {
            let rank = (index + count - start) % count;
            if member.sender.capacity() > 0 && first_with_room.is_none_or(|(best, _)| rank < best) {
                first_with_room = Some((rank, &member.sender));
            }
        }
        if let Some((_, sender)) = first_with_room {
            return Some(Target::One(sender.clone()));
        }
        let mut all: Vec<_> = eligible().map(|m| m.sender.clone()).collect();
        all.rotate_left(start);
        Some(Target::AnyOf(all))
    }
}

/// Where one copy of a published message goes.
#[derive(Clone)]
enum Target {
    /// A plain subscription, or the chosen member of a queue group.
    One(mpsc::Sender<Message>),
    /// A queue group whose matching members were all full: the first to make room gets it.
    AnyOf(Vec<mpsc::Sender<Message>>),
}

impl Registry {
    fn len(&self) -> usize {
        self.plain.len() + self.groups.iter().map(|g| g.members.len()).sum::<usize>()
    }

    fn remove(&mut self, id: u64) {
        if let Some(index) = self.plain.iter().position(|e| e.id == id) {
            self.plain.remove(index);
            return;
        }
        for (group_index, group) in self.groups.iter_mut().enumerate() {
            if let Some(index) = group.members.iter().position(|e| e.id == id) {
                group.members.remove(index);
                if group.members.is_empty() {
                    self.groups.remove(group_index);
                }
                return;
            }
        }
    }
}

/// Removes a subscription from the registry when dropped (held by [`Subscription`]).
pub(crate) struct Registration {
    shared: Weak<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.registry.write().remove(self.id);
        }
    }
}

/// Removes a pending request when the request completes, times out or is dropped.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.pending.lock().remove(&self.id);
        }
    }
}

impl Shared {
    fn check_open(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn check_size(&self, headers: &Headers, payload: &Bytes) -> Result<(), Error> {
        let size = crate::encoded_size(headers, payload);
        if size > self.max_payload {
            Err(Error::PayloadTooLarge {
                size,
                max: self.max_payload,
            })
        } else {
            Ok(())
        }
    }

    /// Where the copies of a message on `subject` go.
    fn route(&self, subject: &str) -> Vec<Target> {
        let registry = self.registry.read();
        let mut targets = Vec::new();
        for entry in &registry.plain {
            if matches(&entry.pattern, subject) && !entry.sender.is_closed() {
                targets.push(Target::One(entry.sender.clone()));
            }
        }
        for group in &registry.groups {
            targets.extend(group.pick(subject));
        }
        targets
    }

    /// The request id if `subject` is a reply subject of this bus.
    fn inbox_id(&self, subject: &str) -> Option<u64> {
        subject.strip_prefix(&self.inbox_prefix)?.parse().ok()
    }

    async fn publish(&self, message: Message) -> Result<(), Error> {
        self.check_open()?;
        let waiter = self
            .inbox_id(&message.subject)
            .and_then(|id| self.pending.lock().remove(&id));
        let targets = self.route(&message.subject);
        match waiter {
            // A reply: complete the request directly (subscriptions matching the inbox subject,
            // if any, still get their copy, as on NATS).
            Some(waiter) if targets.is_empty() => {
                // The requester may have given up in the meantime; like NATS, drop the reply.
                let _ = waiter.send(message);
            }
            Some(waiter) => {
                let _ = waiter.send(message.clone());
                deliver(&targets, message).await;
            }
            None => {
                deliver(&targets, message).await;
            }
        }
        Ok(())
    }

    async fn request(
        &self,
        subject: String,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Message, Error> {
        self.check_open()?;
        let targets = self.route(&subject);
        if targets.is_empty() {
            return Err(Error::NoResponders(subject));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().insert(id, sender);
        let mut guard = PendingGuard {
            shared: self,
            id,
            armed: true,
        };
        // `close` sets the flag before it drains `pending`: either it saw our entry (and the
        // receiver reports it) or we see the flag here.
        self.check_open()?;
        let message = Message {
            subject: subject.clone(),
            reply: Some(format!("{}{id}", self.inbox_prefix)),
            headers,
            payload,
        };
        let exchange = async {
            if deliver(&targets, message).await == 0 {
                // Every matching subscription went away in the meantime.
                return Err(Error::NoResponders(subject.clone()));
            }
            receiver.await.map_err(|_| Error::Closed)
        };
        let outcome = tokio::time::timeout(timeout, exchange).await;
        if let Ok(Ok(_)) = &outcome {
            // The responder removed the entry when it replied.
            guard.armed = false;
        }
        outcome.unwrap_or_else(|_elapsed| Err(Error::Timeout(subject)))
    }

    fn subscribe(
        self: &Arc<Self>,
        pattern: &str,
        group: Option<&str>,
    ) -> Result<Subscription, Error> {
        let (sender, receiver) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            id,
            pattern: pattern.to_owned(),
            sender,
        };
        {
            let mut registry = self.registry.write();
            // Checked under the lock so that `close` cannot miss this subscription.
            self.check_open()?;
            match group {
                None => registry.plain.push(entry),
                Some(name) => match registry.groups.iter_mut().find(|g| g.name == name) {
                    Some(existing) => existing.members.push(entry),
                    None => registry.groups.push(QueueGroup {
                        name: name.to_owned(),
                        members: vec![entry],
                        next: AtomicUsize::new(0),
                    }),
                },
            }
        }
        let registration = Registration {
            shared: Arc::downgrade(self),
            id,
        };
        Ok(Subscription::in_process(
            pattern,
            group,
            receiver,
            registration,
        ))
    }
}

/// Sends `message` to every target: first without waiting, then waiting for the full ones, so a
/// slow subscriber delays the publisher but not the delivery to the other subscribers. Returns
/// how many subscriptions got the message (targets whose subscription was dropped don't count).
async fn deliver<'t>(targets: &'t [Target], message: Message) -> usize {
    let mut delivered = 0;
    let mut blocked = Vec::new();
    let mut offer = |target: &'t Target, message: Message| match try_send(target, message) {
        Ok(()) => delivered += 1,
        Err(TrySendError::Full(message)) => blocked.push((target, message)),
        Err(TrySendError::Closed(_)) => {}
    };
    if let Some((last, others)) = targets.split_last() {
        for target in others {
            offer(target, message.clone());
        }
        offer(last, message);
    }
    for (target, message) in blocked {
        let sent = match target {
            Target::One(sender) => sender.send(message).await.is_ok(),
            Target::AnyOf(senders) => send_to_any(senders, message).await,
        };
        if sent {
            delivered += 1;
        }
    }
    delivered
}

/// Sends without waiting; `Full` if some receiver is still open but has no room.
fn try_send(target: &Target, message: Message) -> Result<(), TrySendError<Message>> {
    match target {
        Target::One(sender) => sender.try_send(message),
        Target::AnyOf(senders) => {
            let mut message = message;
            let mut any_open = false;
            for sender in senders {
                match sender.try_send(message) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Full(returned)) => {
                        any_open = true;
                        message = returned;
                    }
                    Err(TrySendError::Closed(returned)) => message = returned,
                }
            }
            Err(if any_open {
                TrySendError::Full(message)
            } else {
                TrySendError::Closed(message)
            })
        }
    }
}

/// Waits until one of `senders` has room and sends `message` there. `false` if all are closed.
async fn send_to_any(senders: &[mpsc::Sender<Message>], message: Message) -> bool {
    let mut waiting: Vec<_> = senders.iter().map(|s| Box::pin(s.reserve())).collect();
    while !waiting.is_empty() {
        let (reserved, _, rest) = futures::future::select_all(waiting).await;
        match reserved {
            Ok(permit) => {
                permit.send(message);
                return true;
            }
            Err(_closed) => waiting = rest,
        }
    }
    false
}

/// Size of `headers` in the NATS wire format (`NATS/1.0\r\n`, `key: value\r\n` lines, `\r\n`),
/// which counts towards the NATS maximum payload.
/// A random token for the inbox prefix (std's randomly keyed hasher; no extra dependency).
fn random_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    format!("{:016x}", hasher.finish())
}

fn failed<T: Send + 'static>(error: Error) -> BoxFuture<Result<T, Error>> {
    futures::future::ready(Err(error)).boxed()
}

impl InProcessBus {
    /// Creates an empty bus with its own random inbox prefix.
    #[must_use]
    pub fn new(options: InProcessOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_payload: options.max_payload,
                capacity: options.subscription_capacity.max(1),
                closed: AtomicBool::new(false),
                registry: RwLock::new(Registry::default()),
                inbox_prefix: format!("_INBOX.{}.", random_token()),
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// This bus as a [`SharedBus`] (`Arc<dyn Bus>`).
    #[must_use]
    pub fn into_shared(self) -> SharedBus {
        Arc::new(self)
    }

    /// The prefix of the reply subjects of requests made through this bus (`_INBOX.<random>.`).
    #[must_use]
    pub fn inbox_prefix(&self) -> &str {
        &self.shared.inbox_prefix
    }

    /// Number of live subscriptions (plain and queue), for diagnostics and tests.
    #[must_use]
    pub fn subscription_count(&self) -> usize {
        self.shared.registry.read().len()
    }

    /// Number of requests waiting for a reply, for diagnostics and tests.
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.shared.pending.lock().len()
    }

    /// Closes the bus (all clones): publishing, subscribing and requesting fail with
    /// [`Error::Closed`] from now on, waiting requests fail with [`Error::Closed`], and every
    /// subscription's stream ends once its buffered messages are consumed.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let registry = std::mem::take(&mut *self.shared.registry.write());
        let pending = std::mem::take(&mut *self.shared.pending.lock());
        tracing::debug!(
            subscriptions = registry.len(),
            pending_requests = pending.len(),
            "in-process bus closed"
        );
    }

    /// Whether [`InProcessBus::close`] has been called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    fn message(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Headers,
        payload: Bytes,
    ) -> Result<Message, Error> {
        validate_subject(subject)?;
        if let Some(reply) = reply {
            validate_subject(reply)?;
        }
        self.shared.check_size(&headers, &payload)?;
        Ok(Message {
            subject: subject.to_owned(),
            reply: reply.map(str::to_owned),
            headers,
            payload,
        })
    }

    fn publish_message(&self, message: Result<Message, Error>) -> BoxFuture<Result<(), Error>> {
        match message {
            Ok(message) => {
                let shared = Arc::clone(&self.shared);
                async move { shared.publish(message).await }.boxed()
            }
            Err(error) => failed(error),
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(InProcessOptions::default())
    }
}

impl fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessBus")
            .field("inbox_prefix", &self.shared.inbox_prefix)
            .field("max_payload", &self.shared.max_payload)
            .field("subscription_capacity", &self.shared.capacity)
            .field("subscriptions", &self.subscription_count())
            .field("pending_requests", &self.pending_requests())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Bus for InProcessBus {
    fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<Result<(), Error>> {
        self.publish_message(self.message(subject, None, headers, payload))
    }

    fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<Result<(), Error>> {
        self.publish_message(self.message(subject, Some(reply), headers, payload))
    }

    fn subscribe(&self, pattern: &str) -> BoxFuture<Result<Subscription, Error>> {
        if let Err(error) = validate_pattern(pattern) {
            return failed(error);
        }
        let shared = Arc::clone(&self.shared);
        let pattern = pattern.to_owned();
        async move { shared.subscribe(&pattern, None) }.boxed()
    }

    fn queue_subscribe(
        &self,
        pattern: &str,
        group: &str,
    ) -> BoxFuture<Result<Subscription, Error>> {
        if let Err(error) = validate_pattern(pattern).and_then(|()| validate_group(group)) {
            return failed(error);
        }
        let shared = Arc::clone(&self.shared);
        let pattern = pattern.to_owned();
        let group = group.to_owned();
        async move { shared.subscribe(&pattern, Some(&group)) }.boxed()
    }

    fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Message, Error>> {
        if let Err(error) =
            validate_subject(subject).and_then(|()| self.shared.check_size(&headers, &payload))
        {
            return failed(error);
        }
        let shared = Arc::clone(&self.shared);
        let subject = subject.to_owned();
        async move { shared.request(subject, headers, payload, timeout).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_prefixes_differ_between_buses() {
        let a = InProcessBus::default();
        let b = InProcessBus::default();
        assert_ne!(a.inbox_prefix(), b.inbox_prefix());
        assert!(a.inbox_prefix().starts_with("_INBOX."));
        assert!(a.inbox_prefix().ends_with('.'));
        assert_eq!(
            a.shared.inbox_id(&format!("{}42", a.inbox_prefix())),
            Some(42)
        );
        assert_eq!(a.shared.inbox_id(&format!("{}42", b.inbox_prefix())), None);
        assert_eq!(a.shared.inbox_id("_INBOX.x.1"), None);
    }

    #[test]
    fn zero_capacity_is_clamped() {
        let bus = InProcessBus::new(InProcessOptions {
            subscription_capacity: 0,
            ..InProcessOptions::default()
        });
        assert_eq!(bus.shared.capacity, 1);
    }
}
