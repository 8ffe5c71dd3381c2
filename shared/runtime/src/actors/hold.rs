//! How a cart hold plugs into the runtime: a synchronous entity hosted by [`EntityActor`];
//! its placement (which waits on SKU-locations) is driven from `crate::holds`.

use super::hosted::Hosted;
use super::EntityActor;
use super::Hosts;
use crate::directory::Directory;
use crate::entity::Entity;
use crate::outbox::Publication;
use crate::replies::{HoldReply, Reply};
use keel_domain::effects::{self, Effect};
use keel_domain::hold::{Hold, HoldCommand, HoldEvent, EXPIRY_TIMER};
use keel_domain::inventory::LedgerEntry;
use keel_domain::HoldId;

impl Entity for Hold {
    const KIND: &'static str = "hold";
    type Id = HoldId;
    type Command = HoldCommand;
    type Event = HoldEvent;

    fn decide(&self, command: &HoldCommand) -> Result<Vec<HoldEvent>, keel_domain::Error> {
        Hold::decide(self, command)
    }

    fn apply(&mut self, event: &HoldEvent, _at: u64) -> Option<LedgerEntry> {
        Hold::apply(self, event);
        None
    }

    fn effects(&self, id: &HoldId, event: &HoldEvent) -> Vec<Effect> {
        effects::of_hold_event(id, event)
    }

    fn publications(&self, id: &HoldId, _: &[HoldEvent]) -> Vec<Publication> {
        let Some(request) = &self.request else {
            return Vec::new();
        };
        crate::views::hold(self)
            .map(|payload| Publication {
                subject: keel_protocol::events::hold(&request.channel, id),
                payload,
            })
            .into_iter()
            .collect()
    }

    fn reply(&self, events: &[HoldEvent]) -> Reply {
        Reply::Hold(HoldReply {
            hold: self.clone(),
            changed: !events.is_empty(),
        })
    }

    fn timers(&self) -> Vec<(u64, &'static str)> {
        Hold::timers(self)
    }

    type Summary = Hold;

    fn summary(&self) -> Hold {
        self.clone()
    }
}

impl Hosted for Hold {
    fn parse_key(key: &str) -> Option<HoldId> {
        HoldId::parse(key.strip_prefix("h/")?).ok()
    }

    fn directory(hosts: &Hosts) -> &Directory<EntityActor<Self>> {
        &hosts.holds
    }

    fn on_timer(name: &str, now: u64) -> Option<HoldCommand> {
        (name == EXPIRY_TIMER).then_some(HoldCommand::Expire { at: now })
    }
}
