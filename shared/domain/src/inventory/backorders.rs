//! The backorder queue of one SKU-location: orders waiting for stock, first come first served.

use crate::OrderId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};

/// An order waiting for stock at this SKU-location, first come first served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backorder {
    pub order: OrderId,
    pub quantity: u64,
    /// Place in the queue: tickets are handed out in arrival order.
    pub ticket: u64,
}

/// Orders waiting for stock, in ticket order, each found by its order in O(1): a hot
/// SKU-location in a promotion queues thousands, and scanning the queue for the order of every
/// backorder event was the node's largest single cost. Serialized as the list of backorders in
/// queue order, as the queue always was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackorderQueue {
    by_ticket: BTreeMap<u64, Backorder>,
    tickets: HashMap<OrderId, u64>,
}

impl BackorderQueue {
    /// The backorders, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Backorder> + '_ {
        self.by_ticket.values()
    }

    /// The backorder of `order`, if it waits here.
    pub fn get(&self, order: &OrderId) -> Option<&Backorder> {
        self.by_ticket.get(self.tickets.get(order)?)
    }

    /// Whether `order` waits here.
    pub fn contains(&self, order: &OrderId) -> bool {
        self.tickets.contains_key(order)
    }

    pub fn len(&self) -> usize {
        self.by_ticket.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ticket.is_empty()
    }

    /// Adds `quantity` to what `order` waits for, keeping its place; a new order joins last
    /// with `ticket`. Answers whether it was new.
    pub fn add(&mut self, order: &OrderId, quantity: u64, ticket: u64) -> bool {
        if let Some(b) = self.get_mut(order) {
            b.quantity += quantity;
            return false;
        }
        self.insert(Backorder {
            order: order.clone(),
            quantity,
            ticket,
        });
        true
    }

    /// Takes `order` out of the queue.
    pub fn remove(&mut self, order: &OrderId) -> Option<Backorder> {
        let ticket = self.tickets.remove(order)?;
        self.by_ticket.remove(&ticket)
    }

    /// Takes `quantity` off what `order` waits for; it leaves the queue at zero.
    pub fn take(&mut self, order: &OrderId, quantity: u64) {
        let Some(b) = self.get_mut(order) else {
            return;
        };
        b.quantity -= quantity;
        if b.quantity == 0 {
            self.remove(order);
        }
    }

    fn get_mut(&mut self, order: &OrderId) -> Option<&mut Backorder> {
        self.by_ticket.get_mut(self.tickets.get(order)?)
    }

    fn insert(&mut self, backorder: Backorder) {
        if let Some(old) = self
            .tickets
            .insert(backorder.order.clone(), backorder.ticket)
        {
            self.by_ticket.remove(&old);
        }
        self.by_ticket.insert(backorder.ticket, backorder);
    }
}

impl FromIterator<Backorder> for BackorderQueue {
    /// The queue of these backorders, ordered by their tickets (a repeated order keeps its
    /// last entry).
    fn from_iter<I: IntoIterator<Item = Backorder>>(backorders: I) -> Self {
        let mut queue = BackorderQueue::default();
        for b in backorders {
            queue.insert(b);
        }
        queue
    }
}

impl<'a> IntoIterator for &'a BackorderQueue {
    type Item = &'a Backorder;
    type IntoIter = std::collections::btree_map::Values<'a, u64, Backorder>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_ticket.values()
    }
}

impl Serialize for BackorderQueue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for BackorderQueue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Backorder>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str) -> OrderId {
        OrderId::parse(id).unwrap()
    }

    #[test]
    fn orders_keep_their_place_and_leave_when_served() {
        let mut q = BackorderQueue::default();
        assert!(q.add(&order("a"), 2, 0));
        assert!(q.add(&order("b"), 1, 1));
        assert!(!q.add(&order("a"), 3, 2), "a waits for more, in its place");
        let queue: Vec<(&str, u64)> = q.iter().map(|b| (b.order.as_str(), b.quantity)).collect();
        assert_eq!(queue, [("a", 5), ("b", 1)]);
        q.take(&order("a"), 5);
        assert!(!q.contains(&order("a")));
        assert_eq!(q.get(&order("b")).map(|b| b.ticket), Some(1));
        assert_eq!(q.remove(&order("b")).map(|b| b.quantity), Some(1));
        assert!(q.is_empty());
    }

    #[test]
    fn it_serializes_as_the_list_in_queue_order() {
        let q: BackorderQueue = [("b", 7), ("a", 3)]
            .into_iter()
            .map(|(o, ticket)| Backorder {
                order: order(o),
                quantity: 1,
                ticket,
            })
            .collect();
        let json = serde_json::to_value(&q).unwrap();
        assert_eq!(json[0]["order"], "a");
        assert_eq!(json[1]["ticket"], 7);
        let back: BackorderQueue = serde_json::from_value(json).unwrap();
        assert_eq!(back, q);
    }
}
