//! Token revocation (RFC 7009). Refresh tokens are deleted together with their grant family
//! (so the access tokens issued from the same grant stop working too); access tokens (JWTs)
//! are recorded by `jti` until they would have expired, and every validation consults that list.
//! Only the client a token was issued to can revoke it; unknown, invalid or foreign tokens are
//! answered 200 like successful revocations (§2.2), so the endpoint reveals nothing.

use super::access_token::validate;
use super::client_auth::ClientRequest;
use crate::error::Result;
use crate::http::AppState;
use crate::store::unix_now;

pub async fn revoke(state: &AppState, req: &ClientRequest) -> Result<()> {
    let token = req.params.require("token")?;
    // token_type_hint only orders the search (§2.1); both kinds are always tried.
    let client_id = &req.client.client_id;
    if let Some(r) = state.store.get_refresh(token).await? {
        if &r.client_id == client_id {
            state.store.take_refresh(token).await?;
            // §2.1: also invalidate the access tokens of the same grant.
            if !r.family.is_empty() {
                let until = r
                    .exp
                    .max(unix_now() + state.config.access_token_lifetime_secs);
                state.store.revoke_family(&r.family, until).await?;
            }
        }
        return Ok(());
    }
    // A PCT (Grant §3.7, `token_type_hint=pct`): revocable by the client it was issued to.
    if let Some(pct) = state.store.get_pct(token).await? {
        if &pct.client_id == client_id {
            state.store.revoke_pct(token).await?;
        }
        return Ok(());
    }
    if let Ok(claims) = validate(state, token).await?
        && &claims.client_id == client_id
    {
        state.store.revoke_jti(&claims.jti, claims.exp).await?;
    }
    Ok(())
}
