//! The actors a node hosts, by kind: where each entity's actor lives, activated on demand.
//! It delivers the commands the mesh has for this node ([`Local`]).

use super::{EntityActor, Exec, Hosted, OrderActor, OrderExec};
use crate::catalog::Catalog;
use crate::directory::{Directory, Factory};
use crate::mesh::{self, Local, Mesh, Outcome};
use crate::replies::Answer;
use crate::Error;
use actix::ArbiterHandle;
use futures::future::BoxFuture;
use futures::FutureExt;
use keel_domain::effects::Effect;
use keel_domain::hold::Hold;
use keel_domain::inventory::{SkuLocation, StockCommand};
use keel_domain::warehouse::WarehouseNode;
use keel_domain::{LocationId, SkuId};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The actors of one node.
pub(crate) struct Hosts {
    /// How actors reach each other and the bus.
    pub mesh: Arc<Mesh>,
    pub catalog: Catalog,
    /// An actor idle this long is passivated.
    pub idle_after: Duration,
    pub orders: Directory<OrderActor>,
    pub stock: Directory<EntityActor<SkuLocation>>,
    pub warehouses: Directory<EntityActor<WarehouseNode>>,
    pub holds: Directory<EntityActor<Hold>>,
}

impl Hosts {
    /// The registry, with the mesh it delivers for.
    pub(crate) fn new(parts: mesh::Parts, catalog: Catalog, idle_after: Duration) -> Arc<Hosts> {
        let arbiters: Arc<[ArbiterHandle]> = Arc::clone(&parts.arbiters);
        Arc::new_cyclic(|me: &Weak<Hosts>| {
            let local: Weak<dyn Local> = me.clone();
            let orders: Factory<OrderActor> = factory(me, OrderActor::activate);
            let stock: Factory<EntityActor<SkuLocation>> = factory(me, EntityActor::activate);
            let warehouses: Factory<EntityActor<WarehouseNode>> =
                factory(me, EntityActor::activate);
            let holds: Factory<EntityActor<Hold>> = factory(me, EntityActor::activate);
            Hosts {
                mesh: Mesh::new(parts, local),
                catalog,
                idle_after,
                orders: Directory::new(Arc::clone(&arbiters), 16, orders),
                // Hot SKU-locations take the brunt of a promotion: a deeper mailbox.
                stock: Directory::new(Arc::clone(&arbiters), 256, stock),
                warehouses: Directory::new(Arc::clone(&arbiters), 64, warehouses),
                holds: Directory::new(arbiters, 16, holds),
            }
        })
    }

    /// Executes a command on a SKU-location of this node.
    pub(crate) async fn stock_exec(
        &self,
        sku: &SkuId,
        location: &LocationId,
        command_id: Option<String>,
        command: StockCommand,
    ) -> Result<Answer, Error> {
        let key = crate::keys::sku_location(sku, location);
        self.exec::<SkuLocation>(&key, command_id, command).await
    }

    /// Executes a command on the entity of `key`, hosted by an [`EntityActor`].
    pub(crate) async fn exec<E: Hosted>(
        &self,
        key: &str,
        command_id: Option<String>,
        command: E::Command,
    ) -> Result<Answer, Error> {
        let msg = Exec {
            command_id,
            command,
        };
        E::directory(self).ask(key, msg).await?
    }

    async fn deliver(&self, command_id: &str, effect: &Effect) -> Outcome {
        let id = Some(command_id.to_owned());
        match effect.clone() {
            Effect::Stock {
                sku,
                location,
                command,
            } => self
                .stock_exec(&sku, &location, id, command)
                .await
                .map(Some),
            Effect::Order { order, command } => {
                let key = crate::keys::order(&order);
                let msg = OrderExec {
                    command_id: id,
                    command,
                };
                self.orders.ask(&key, msg).await?.map(|_| None)
            }
            Effect::Warehouse { location, command } => {
                let key = crate::keys::warehouse(&location);
                let done = self.exec::<WarehouseNode>(&key, id, command).await;
                done.map(|_| None)
            }
            Effect::Hold { hold, command } => {
                let key = crate::keys::hold(&hold);
                self.exec::<Hold>(&key, id, command).await.map(Some)
            }
        }
    }
}

/// Activates actors of one kind on the registry `me`.
fn factory<A: actix::Actor<Context = actix::Context<A>>>(
    me: &Weak<Hosts>,
    activate: fn(&Weak<Hosts>, String) -> A,
) -> Factory<A> {
    let me = me.clone();
    Arc::new(move |key| activate(&me, key))
}

impl Local for Hosts {
    fn deliver_local<'a>(
        &'a self,
        command_id: &'a str,
        effect: &'a Effect,
    ) -> BoxFuture<'a, Outcome> {
        self.deliver(command_id, effect).boxed()
    }
}
