//! Every operation of [`KeelClient`] described once, for every transport.
//!
//! An HTTP route of Keel maps 1:1 onto a request-reply subject (docs/http-api.md, "Routes and
//! their API subjects"): the route's path and query parameters are the fields of the subject's
//! request body, and a route's JSON body is the subject's body as is. [`ApiClient`] builds a
//! [`Call`] per operation (route, subject, parameters or body) and decodes the reply, following
//! paged lists to their end; a [`Transport`] (HTTP or NATS) only performs the call.

use std::fmt;

use keel_protocol::subjects as s;
use serde::de::DeserializeOwned;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{CallError, KeelClient, Reply};
use crate::api::{
    Ledger, NewChannel, NewLocation, NewSku, Order, Page, PlaceOrder, Position, Receipt, Step,
};

/// Entries fetched per request of a paged list (the server's default page).
const PAGE: u64 = 1_000;

/// HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

/// The value of a call parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    /// An identifier (or a cursor that is one).
    Str(&'a str),
    /// A number: a sequence, a queue ticket, a page size.
    Num(u64),
}

impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Str(s) => f.write_str(s),
            Param::Num(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Param<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Param::Str(s) => serializer.serialize_str(s),
            Param::Num(n) => serializer.serialize_u64(*n),
        }
    }
}

/// One call of Keel's API as every transport sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// HTTP method of the route.
    pub method: Method,
    /// The route, `{name}` standing for the parameter `name` (`/v1/orders/{id}/cancel`).
    pub route: &'static str,
    /// The request-reply subject the route maps onto.
    pub subject: &'static str,
    /// Named parameters: over HTTP in the route's path, or else in its query; over NATS the
    /// fields of the request body. Identifiers are `[A-Za-z0-9_-]` by contract, so nothing
    /// needs escaping.
    pub params: &'a [(&'static str, Param<'a>)],
    /// The JSON request body of a create, receipt or order, sent as is by every transport
    /// (`params` is then empty).
    pub body: Option<&'a [u8]>,
}

impl Call<'_> {
    /// Appends the route with its parameters filled in (path first, the rest as the query).
    ///
    /// # Panics
    ///
    /// When the route names a parameter the call does not have (a bug in [`ApiClient`]).
    pub fn write_path(&self, out: &mut String) {
        use fmt::Write as _;
        for segment in self.route.split('/').skip(1) {
            out.push('/');
            match placeholder(segment) {
                Some(name) => {
                    let value = self
                        .params
                        .iter()
                        .find(|(n, _)| *n == name)
                        .unwrap_or_else(|| panic!("{} needs the parameter {name}", self.route))
                        .1;
                    let _ = write!(out, "{value}");
                }
                None => out.push_str(segment),
            }
        }
        let mut separator = '?';
        for (name, value) in self.params {
            if !self
                .route
                .split('/')
                .any(|seg| placeholder(seg) == Some(*name))
            {
                let _ = write!(out, "{separator}{name}={value}");
                separator = '&';
            }
        }
    }

    /// The request body of the subject: the call's JSON body, or else its parameters as one
    /// JSON object (`{}` without any).
    pub fn write_body(&self, out: &mut Vec<u8>) -> Reply<()> {
        match self.body {
            Some(body) => out.extend_from_slice(body),
            None => serde_json::to_writer(&mut *out, &Fields(self.params))
                .map_err(|e| CallError::Decode(e.to_string()))?,
        }
        Ok(())
    }
}

/// `name` when `segment` is `{name}`.
fn placeholder(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

/// Parameters serialized as one JSON object.
struct Fields<'a>(&'a [(&'static str, Param<'a>)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Performs [`Call`]s: the part of a client that differs between HTTP and NATS.
pub trait Transport: Send {
    /// Performs `call`. Answers the `2xx` status the HTTP API has for the reply (`201` when the
    /// request created the resource) and keeps the reply body for [`Transport::reply`]; any
    /// other reply is [`CallError::Api`] with that status.
    fn call(&mut self, call: &Call<'_>) -> Reply<u16>;
    /// The body of the last successful reply.
    fn reply(&self) -> &[u8];
}

/// A cursor of a paged list: a ledger sequence, a queue ticket, an order id.
trait Cursor: DeserializeOwned {
    /// The cursor as a call parameter.
    fn param(&self) -> Param<'_>;
}

impl Cursor for u64 {
    fn param(&self) -> Param<'_> {
        Param::Num(*self)
    }
}

impl Cursor for String {
    fn param(&self) -> Param<'_> {
        Param::Str(self)
    }
}

/// The [`KeelClient`] of every transport: each operation as a [`Call`] over a [`Transport`].
pub struct ApiClient<T> {
    transport: T,
    body: Vec<u8>,
}

impl<T: Transport> ApiClient<T> {
    /// A client performing its calls through `transport`.
    pub fn new(transport: T) -> Self {
        ApiClient {
            transport,
            body: Vec::with_capacity(1024),
        }
    }

    /// `POST route` with `body` as JSON, i.e. `subject` with that body.
    fn post<B: Serialize>(
        &mut self,
        route: &'static str,
        subject: &'static str,
        body: &B,
    ) -> Reply<u16> {
        self.body.clear();
        serde_json::to_writer(&mut self.body, body)
            .map_err(|e| CallError::Decode(e.to_string()))?;
        self.transport.call(&Call {
            method: Method::Post,
            route,
            subject,
            params: &[],
            body: Some(&self.body),
        })
    }

    /// A call without a body (its parameters say what it is about).
    fn call(
        &mut self,
        method: Method,
        route: &'static str,
        subject: &'static str,
        params: &[(&'static str, Param<'_>)],
    ) -> Reply<u16> {
        self.transport.call(&Call {
            method,
            route,
            subject,
            params,
            body: None,
        })
    }

    /// Decodes the last reply.
    fn decode<R: DeserializeOwned>(&self) -> Reply<R> {
        serde_json::from_slice(self.transport.reply()).map_err(|e| CallError::Decode(e.to_string()))
    }

    /// Reads one SKU-location's paged list (`route`/`subject`) from the page at `next` (the
    /// `cursor` parameter) to the last page, appending its entries to `out`.
    fn follow<E: DeserializeOwned, N: Cursor>(
        &mut self,
        (route, subject): (&'static str, &'static str),
        (sku, location): (&str, &str),
        cursor: &'static str,
        mut next: Option<N>,
        out: &mut Vec<E>,
    ) -> Reply<()> {
        while let Some(at) = next.take() {
            let params = [
                ("sku", Param::Str(sku)),
                ("location", Param::Str(location)),
                (cursor, at.param()),
                ("limit", Param::Num(PAGE)),
            ];
            self.call(Method::Get, route, subject, &params)?;
            let page: Page<E, N> = self.decode()?;
            out.extend(page.entries);
            next = page.next;
        }
        Ok(())
    }
}

impl<T: Transport> KeelClient for ApiClient<T> {
    /// Over NATS, which has no readiness subject, the cheapest read: a node answers requests
    /// only once it has recovered and serves.
    fn ready(&mut self) -> Reply<()> {
        self.call(Method::Get, "/readyz", s::LOCATIONS_LIST, &[])
            .map(drop)
    }

    fn create_location(&mut self, req: &NewLocation<'_>) -> Reply<bool> {
        Ok(self.post("/v1/locations", s::LOCATIONS_CREATE, req)? == 201)
    }

    fn create_channel(&mut self, req: &NewChannel<'_>) -> Reply<bool> {
        Ok(self.post("/v1/channels", s::CHANNELS_CREATE, req)? == 201)
    }

    fn create_sku(&mut self, req: &NewSku<'_>) -> Reply<bool> {
        Ok(self.post("/v1/skus", s::SKUS_CREATE, req)? == 201)
    }

    fn receipt(&mut self, req: &Receipt<'_>) -> Reply<()> {
        self.post("/v1/inventory/receipts", s::INVENTORY_RECEIPT, req)
            .map(drop)
    }

    fn place_order(&mut self, req: &PlaceOrder<'_>) -> Reply<Order> {
        self.post("/v1/orders", s::ORDERS_PLACE, req)?;
        self.decode()
    }

    fn cancel(&mut self, order_id: &str) -> Reply<()> {
        let params = [("id", Param::Str(order_id))];
        self.call(
            Method::Post,
            "/v1/orders/{id}/cancel",
            s::ORDERS_CANCEL,
            &params,
        )
        .map(drop)
    }

    fn confirm(&mut self, fulfillment_id: &str, step: Step) -> Reply<()> {
        let params = [
            ("id", Param::Str(fulfillment_id)),
            ("step", Param::Str(step.as_str())),
        ];
        let route = "/v1/fulfillments/{id}/{step}";
        self.call(Method::Post, route, s::FULFILLMENTS_CONFIRM, &params)
            .map(drop)
    }

    fn get_order(&mut self, order_id: &str) -> Reply<Order> {
        let params = [("id", Param::Str(order_id))];
        self.call(Method::Get, "/v1/orders/{id}", s::ORDERS_GET, &params)?;
        self.decode()
    }

    fn position(&mut self, sku: &str, location: &str) -> Reply<Position> {
        let params = [("sku", Param::Str(sku)), ("location", Param::Str(location))];
        let route = "/v1/inventory/{sku}/{location}";
        self.call(Method::Get, route, s::INVENTORY_POSITION, &params)?;
        let mut position: Position = self.decode()?;
        // A busy position shows its first reservations and backorders only: follow the pages.
        let list = (
            "/v1/inventory/{sku}/{location}/reservations",
            s::INVENTORY_RESERVATIONS,
        );
        let next = position.reservations_next.take();
        self.follow(
            list,
            (sku, location),
            "after",
            next,
            &mut position.reservations,
        )?;
        let list = (
            "/v1/inventory/{sku}/{location}/backorders",
            s::INVENTORY_BACKORDERS,
        );
        let next = position.backorders_next.take();
        self.follow(
            list,
            (sku, location),
            "after",
            next,
            &mut position.backorders,
        )?;
        Ok(position)
    }

    fn ledger(&mut self, sku: &str, location: &str) -> Reply<Ledger> {
        let mut entries = Vec::new();
        let list = ("/v1/inventory/{sku}/{location}/ledger", s::INVENTORY_LEDGER);
        self.follow(list, (sku, location), "from", Some(0u64), &mut entries)?;
        Ok(Ledger {
            entries,
            next: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LineRequest, ShipTo};
    use std::collections::VecDeque;

    /// Records what each transport would send and answers canned replies.
    #[derive(Default)]
    struct Recorder {
        /// `(method, HTTP path, subject, NATS body)` per call.
        sent: Vec<(Method, String, &'static str, String)>,
        replies: VecDeque<(u16, &'static str)>,
        reply: Vec<u8>,
    }

    impl Transport for Recorder {
        fn call(&mut self, call: &Call<'_>) -> Reply<u16> {
            let mut path = String::new();
            call.write_path(&mut path);
            let mut body = Vec::new();
            call.write_body(&mut body)?;
            let body = String::from_utf8(body).unwrap();
            self.sent.push((call.method, path, call.subject, body));
            let (status, reply) = self.replies.pop_front().unwrap_or((200, "{}"));
            self.reply = reply.as_bytes().to_vec();
            Ok(status)
        }

        fn reply(&self) -> &[u8] {
            &self.reply
        }
    }

    fn client(replies: &[(u16, &'static str)]) -> ApiClient<Recorder> {
        ApiClient::new(Recorder {
            replies: replies.iter().copied().collect(),
            ..Recorder::default()
        })
    }

    fn sent(c: &ApiClient<Recorder>) -> Vec<(Method, &str, &str, &str)> {
        c.transport
            .sent
            .iter()
            .map(|(m, p, s, b)| (*m, p.as_str(), *s, b.as_str()))
            .collect()
    }

    #[test]
    fn every_operation_maps_its_route_onto_its_subject() {
        let mut c = client(&[(200, "{}"), (201, "{}"), (200, "{}")]);
        c.ready().unwrap();
        let created = c
            .create_sku(&NewSku {
                id: "S-1",
                name: "Mug",
            })
            .unwrap();
        let repeated = c
            .create_sku(&NewSku {
                id: "S-1",
                name: "Mug",
            })
            .unwrap();
        assert_eq!((created, repeated), (true, false));
        let receipt = Receipt {
            receipt_id: "r-1",
            sku: "S-1",
            location: "L-1",
            quantity: 3,
        };
        c.receipt(&receipt).unwrap();
        c.cancel("o-1").unwrap();
        c.confirm("o-1-F1", Step::Packed).unwrap();
        assert_eq!(
            sent(&c),
            [
                (Method::Get, "/readyz", s::LOCATIONS_LIST, "{}"),
                (
                    Method::Post,
                    "/v1/skus",
                    s::SKUS_CREATE,
                    r#"{"id":"S-1","name":"Mug"}"#
                ),
                (
                    Method::Post,
                    "/v1/skus",
                    s::SKUS_CREATE,
                    r#"{"id":"S-1","name":"Mug"}"#
                ),
                (
                    Method::Post,
                    "/v1/inventory/receipts",
                    s::INVENTORY_RECEIPT,
                    r#"{"receipt_id":"r-1","sku":"S-1","location":"L-1","quantity":3}"#
                ),
                (
                    Method::Post,
                    "/v1/orders/o-1/cancel",
                    s::ORDERS_CANCEL,
                    r#"{"id":"o-1"}"#
                ),
                (
                    Method::Post,
                    "/v1/fulfillments/o-1-F1/packed",
                    s::FULFILLMENTS_CONFIRM,
                    r#"{"id":"o-1-F1","step":"packed"}"#
                ),
            ]
        );
    }

    #[test]
    fn orders_are_sent_as_is_and_decoded() {
        let order = r#"{"id":"o-1","status":"allocated","lines":[{"sku":"S","quantity":2}]}"#;
        let mut c = client(&[(201, order), (200, order)]);
        let lines = [LineRequest {
            sku: "S",
            quantity: 2,
        }];
        let req = PlaceOrder {
            id: "o-1",
            channel: "web",
            ship_to: ShipTo { region: "east" },
            lines: &lines,
        };
        assert_eq!(c.place_order(&req).unwrap().status, "allocated");
        assert_eq!(c.get_order("o-1").unwrap().lines[0].quantity, 2);
        let body = r#"{"id":"o-1","channel":"web","ship_to":{"region":"east"},"lines":[{"sku":"S","quantity":2}]}"#;
        assert_eq!(
            sent(&c),
            [
                (Method::Post, "/v1/orders", s::ORDERS_PLACE, body),
                (
                    Method::Get,
                    "/v1/orders/o-1",
                    s::ORDERS_GET,
                    r#"{"id":"o-1"}"#
                ),
            ]
        );
        let mut c = client(&[(200, "not json")]);
        assert_eq!(c.get_order("o-1").unwrap_err().code(), "decode");
    }

    #[test]
    fn paged_lists_are_followed_to_the_end() {
        let position = r#"{"sku":"S","location":"L","on_hand":5,"allocated":3,"available":2,
            "reservations":[{"order":"a","quantity":1}],"reservations_next":"a",
            "backorders":[],"backorders_next":7}"#;
        let mut c = client(&[
            (200, position),
            (200, r#"{"entries":[{"order":"b","quantity":2}]}"#),
            (
                200,
                r#"{"entries":[{"order":"c","quantity":4}],"next":null}"#,
            ),
            (
                200,
                r#"{"entries":[{"seq":0,"movement":"receipt","on_hand_delta":5,"allocated_delta":0}],"next":1}"#,
            ),
            (200, r#"{"entries":[]}"#),
        ]);
        let p = c.position("S", "L").unwrap();
        assert_eq!(p.reservations.len(), 2);
        assert_eq!(p.backorders[0].order, "c");
        assert_eq!(c.ledger("S", "L").unwrap().entries.len(), 1);
        assert_eq!(
            sent(&c),
            [
                (
                    Method::Get,
                    "/v1/inventory/S/L",
                    s::INVENTORY_POSITION,
                    r#"{"sku":"S","location":"L"}"#
                ),
                (
                    Method::Get,
                    "/v1/inventory/S/L/reservations?after=a&limit=1000",
                    s::INVENTORY_RESERVATIONS,
                    r#"{"sku":"S","location":"L","after":"a","limit":1000}"#
                ),
                (
                    Method::Get,
                    "/v1/inventory/S/L/backorders?after=7&limit=1000",
                    s::INVENTORY_BACKORDERS,
                    r#"{"sku":"S","location":"L","after":7,"limit":1000}"#
                ),
                (
                    Method::Get,
                    "/v1/inventory/S/L/ledger?from=0&limit=1000",
                    s::INVENTORY_LEDGER,
                    r#"{"sku":"S","location":"L","from":0,"limit":1000}"#
                ),
                (
                    Method::Get,
                    "/v1/inventory/S/L/ledger?from=1&limit=1000",
                    s::INVENTORY_LEDGER,
                    r#"{"sku":"S","location":"L","from":1,"limit":1000}"#
                ),
            ]
        );
    }
}
