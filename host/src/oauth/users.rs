//! Users (resource owners and requesting parties): argon2id password hashes, attributes that
//! become claims.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use crate::config::UserConfig;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::store::{User, unix_now};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub claims: BTreeMap<String, serde_json::Value>,
}

impl From<&UserConfig> for NewUser {
    fn from(u: &UserConfig) -> Self {
        NewUser {
            username: u.username.clone(),
            password: u.password.clone(),
            claims: u.claims.clone(),
        }
    }
}

/// Usernames: 1-128 characters from `A-Z a-z 0-9 - . _ ~ @ +` (so e-mail addresses work and
/// nothing needs escaping in keys, URLs or HTML).
pub fn valid_username(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~@+".contains(&b))
}

async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(Error::internal)
    })
    .await
    .map_err(Error::internal)?
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Validates and hashes a new user.
pub async fn build(new: NewUser) -> Result<User> {
    if !valid_username(&new.username) {
        return Err(Error::invalid_request(
            "username must be 1-128 characters from A-Z a-z 0-9 - . _ ~ @ +",
        ));
    }
    if new.password.chars().count() < 8 || new.password.len() > 1024 {
        return Err(Error::invalid_request(
            "password must be 8 to 1024 characters",
        ));
    }
    Ok(User {
        username: new.username,
        password_hash: hash_password(new.password).await?,
        claims: new.claims,
        created_at: unix_now(),
    })
}

pub async fn create(state: &AppState, new: NewUser) -> Result<User> {
    let user = build(new).await?;
    if !state.store.create_user(&user).await? {
        return Err(Error::Conflict(format!(
            "user {} already exists",
            user.username
        )));
    }
    Ok(user)
}

/// The user if `password` is right. Unknown users cost the same argon2 work, so timing does not
/// reveal which usernames exist.
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Option<User>> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let user = state.store.get_user(username).await?;
    let phc = match &user {
        Some(u) => u.password_hash.clone(),
        None => match DUMMY.get() {
            Some(d) => d.clone(),
            None => {
                let d = hash_password("not-a-real-password".into()).await?;
                DUMMY.get_or_init(|| d).clone()
            }
        },
    };
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_blocking(&password, &phc))
        .await
        .map_err(Error::internal)?;
    Ok(user.filter(|_| ok))
}

/// Applies the config file's users: created, or overwritten when password or claims changed.
pub async fn apply_config(state: &AppState, users: &[UserConfig]) -> anyhow::Result<()> {
    for u in users {
        if let Some(existing) = state.store.get_user(&u.username).await? {
            let (pw, phc) = (u.password.clone(), existing.password_hash.clone());
            let same_pw = tokio::task::spawn_blocking(move || verify_blocking(&pw, &phc)).await?;
            if same_pw && existing.claims == u.claims {
                continue;
            }
        }
        let user = build(NewUser::from(u))
            .await
            .map_err(|e| anyhow::anyhow!("config user {:?}: {e}", u.username))?;
        state.store.put_user(&user).await?;
    }
    Ok(())
}

pub fn view(u: &User) -> serde_json::Value {
    serde_json::json!({
        "username": u.username,
        "claims": u.claims,
        "created_at": u.created_at,
    })
}
