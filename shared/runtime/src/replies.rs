//! What a command's target answers its sender, typed: in memory between actors, recorded with
//! the command's id (a repeat is answered the same), and carried back to a sender on another
//! node. Its JSON shape is the one these answers always had on disk and on the bus.

use crate::Error;
use keel_domain::hold::Hold;
use keel_domain::inventory::Position;
use keel_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

/// A command's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Reply {
    /// A SKU-location's.
    Grant(Grant),
    /// A cart hold's.
    Hold(HoldReply),
    /// Orders and warehouse nodes answer nothing beyond success.
    Done,
}

/// A SKU-location's answer: what the command granted (reserved, held or converted) and the
/// position after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub granted: u64,
    pub position: Position,
}

/// A cart hold's answer: the hold after the command (its placement and its conversion read
/// what it got), and whether the command changed it (a placement that did created it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct HoldReply {
    pub hold: Hold,
    pub changed: bool,
}

impl Reply {
    /// The SKU-location's grant this reply must be.
    pub(crate) fn grant(self) -> Result<Grant, Error> {
        match self {
            Reply::Grant(grant) => Ok(grant),
            other => Err(unexpected("a grant", &other)),
        }
    }

    /// The hold's answer this reply must be.
    pub(crate) fn hold(self) -> Result<HoldReply, Error> {
        match self {
            Reply::Hold(hold) => Ok(hold),
            other => Err(unexpected("a hold", &other)),
        }
    }
}

fn unexpected(wanted: &str, got: &Reply) -> Error {
    Error::Internal(format!("expected {wanted} in reply, got {got:?}"))
}

/// One command's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub reply: Reply,
    /// The command id had been handled before: this is the reply recorded then.
    pub replayed: bool,
}

/// A command's outcome as it travels back to its sender on another node.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct OutcomeMessage {
    command_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<Reply>,
    #[serde(default)]
    replayed: bool,
    /// `(code, message)` when it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<(ErrorCode, String)>,
}

impl OutcomeMessage {
    pub(crate) fn new(command_id: &str, outcome: &Result<Option<Answer>, Error>) -> Self {
        let (reply, replayed, error) = match outcome {
            Ok(Some(executed)) => (Some(executed.reply.clone()), executed.replayed, None),
            Ok(None) => (None, false, None),
            Err(e) => (None, false, Some((e.code(), e.to_string()))),
        };
        OutcomeMessage {
            command_id: command_id.to_owned(),
            reply,
            replayed,
            error,
        }
    }

    /// The command id and the outcome it carries.
    pub(crate) fn into_outcome(self) -> (String, Result<Option<Answer>, Error>) {
        let outcome = match (self.error, self.reply) {
            (Some((code, message)), _) => Err(Error::Remote { code, message }),
            (None, Some(reply)) => Ok(Some(Answer {
                reply,
                replayed: self.replayed,
            })),
            (None, None) => Ok(None),
        };
        (self.command_id, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_keep_the_json_shape_recorded_before_they_were_typed() {
        let position = Position {
            on_hand: 5,
            allocated: 2,
            ..Position::default()
        };
        let recorded = serde_json::json!({ "granted": 2, "position": position });
        let grant: Reply = serde_json::from_value(recorded.clone()).unwrap();
        assert_eq!(
            grant.clone().grant().unwrap(),
            Grant {
                granted: 2,
                position
            }
        );
        assert_eq!(serde_json::to_value(&grant).unwrap(), recorded);
        let done: Reply = serde_json::from_value(serde_json::Value::Null).unwrap();
        assert_eq!(done, Reply::Done);
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            serde_json::Value::Null
        );
        assert!(done.grant().is_err(), "a mismatch is an error, not a panic");
    }
}
