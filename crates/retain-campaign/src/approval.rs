//! Who may do what to a campaign. Approval levels follow the budget: a branch head (科室)
//! signs small campaigns, the department (部门) larger ones, the company (公司) the rest. An
//! approver signs at most their own level and never their own campaign.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Budgets up to these amounts (yuan) need approval level 1 and 2; above them, level 3.
pub const LEVEL_LIMITS: [f64; 2] = [20_000.0, 200_000.0];

/// The approval level a budget needs: 1, 2 or 3.
#[must_use]
pub fn required_level(budget: f64) -> i64 {
    1 + LEVEL_LIMITS.iter().filter(|l| budget > **l).count() as i64
}

/// Roles of the retention department.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the platform; may do everything.
    Admin,
    /// Plans campaigns, rehearses and launches approved ones.
    Analyst,
    /// Approves or rejects campaigns up to their level.
    Approver,
    /// An account manager (客户经理): works their own work orders and records callbacks.
    Manager,
    /// Store staff: the counter pop-ups and their callbacks.
    Store,
}

impl Role {
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Approver => "approver",
            Role::Manager => "manager",
            Role::Store => "store",
        }
    }

    #[must_use]
    pub fn from_code(code: &str) -> Option<Role> {
        [
            Role::Admin,
            Role::Analyst,
            Role::Approver,
            Role::Manager,
            Role::Store,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

/// Who is acting, as the caller authenticated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// The highest approval level an approver may sign (1–3).
    pub level: i64,
}

/// What an actor wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Plan,
    Approve,
    Launch,
    RecordCallbacks,
    Evaluate,
}

impl Actor {
    /// The operator of a local workspace: whoever can write its files administers it.
    #[must_use]
    pub fn local() -> Actor {
        let name = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "local".to_owned());
        Actor {
            name: format!("local:{name}"),
            role: Role::Admin,
            level: 3,
        }
    }

    /// Whether the role allows `action` at all.
    pub fn may(&self, action: Action) -> Result<()> {
        let allowed = match action {
            Action::Plan | Action::Launch | Action::Evaluate => {
                matches!(self.role, Role::Admin | Role::Analyst)
            }
            Action::Approve => matches!(self.role, Role::Admin | Role::Approver),
            Action::RecordCallbacks => self.role != Role::Approver,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "{} ({}) may not {}",
                self.name,
                self.role.code(),
                match action {
                    Action::Plan => "plan campaigns",
                    Action::Approve => "approve campaigns",
                    Action::Launch => "launch campaigns",
                    Action::RecordCallbacks => "record callbacks",
                    Action::Evaluate => "evaluate campaigns",
                }
            )))
        }
    }

    /// Whether the actor may sign a campaign of `owner` needing `level`.
    pub fn may_approve(&self, owner: &str, level: i64) -> Result<()> {
        self.may(Action::Approve)?;
        if self.role != Role::Admin && self.name == owner {
            return Err(Error::Forbidden(format!(
                "{} owns this campaign; another approver must sign it",
                self.name
            )));
        }
        if self.level < level {
            return Err(Error::Forbidden(format!(
                "the budget needs approval level {level}; {} signs up to level {}",
                self.name, self.level
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, level: i64) -> Actor {
        Actor {
            name: "x".into(),
            role,
            level,
        }
    }

    #[test]
    fn levels_follow_the_budget() {
        assert_eq!(required_level(0.0), 1);
        assert_eq!(required_level(20_000.0), 1);
        assert_eq!(required_level(20_000.01), 2);
        assert_eq!(required_level(1e6), 3);
    }

    #[test]
    fn only_approvers_of_the_level_and_not_the_owner_approve() {
        assert!(actor(Role::Analyst, 3).may_approve("y", 1).is_err());
        assert!(actor(Role::Approver, 1).may_approve("y", 2).is_err());
        assert!(actor(Role::Approver, 2).may_approve("y", 2).is_ok());
        assert!(actor(Role::Approver, 3).may_approve("x", 1).is_err());
        assert!(actor(Role::Admin, 3).may_approve("x", 3).is_ok());
        assert!(actor(Role::Approver, 3).may(Action::Launch).is_err());
        assert!(actor(Role::Manager, 0).may(Action::RecordCallbacks).is_ok());
    }
}
