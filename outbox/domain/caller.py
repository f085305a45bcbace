"""Who is calling: a principal built from the stable identity fields AWS presents, never a name the caller picks.

The principal scopes a caller's Idempotency-Keys, message ids and reads (invariant 9). It is made
of what API Gateway proved and the caller cannot choose:

- a Cognito identity pool user: the identity id (every user of a pool arrives as the same role
  session, ``Cognito_<pool>_Role/CognitoIdentityCredentials``, so the role says nothing about who);
- an IAM user or the account's root: the unique id (``AIDA...``; the account id for root), which a
  user deleted and created again under the same name does not get back;
- an assumed role (and a federated user): the role's unique id, the part of ``AROA...:<session>``
  before the colon. The session name is chosen by whoever assumes the role, so by default every
  session of a role is one caller (``RoleSessions.SHARED``): IAM grants a role's permissions to
  every session alike, anyone who may assume the role may pick any session name, and workloads
  whose session name rotates with their credentials (ECS task ids, IRSA, Lambda) stay one caller
  across a refresh. ``RoleSessions.APART`` makes each session name its own caller, for roles whose
  session names are set by someone you trust (IAM Identity Center, a SAML or OIDC identity provider,
  a broker) and that nobody may assume with a name of their own choosing;
- the account the caller belongs to, in every IAM principal;
- a JWT: its issuer and subject.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# An account id: also root's unique id, and the part before the colon of a federated user's.
_ACCOUNT_ID = re.compile(r"^\d{12}$")
# A unique id of IAM (AIDA..., AROA..., AKIA...: upper-case letters and digits) or an account id.
_UNIQUE_ID = re.compile(r"^[A-Z0-9]{12,128}$")


class RoleSessions(enum.StrEnum):
    """Whether the sessions of one assumed role are one caller (``shared``, the default) or one each (``apart``)."""

    SHARED = "shared"
    APART = "apart"


@dataclass(frozen=True)
class Caller:
    """A caller's principal, and the principal 0.1.0 gave the same caller where that one was already safe.

    ``legacy`` is only set where 0.1.0's principal held nothing the caller picks (a JWT's issuer
    and subject; an IAM user's or root's ARN): records 0.1.0 wrote for it stay readable by it. An assumed
    role's or a Cognito user's 0.1.0 principal ended in a session name anyone could choose, so it
    has none.
    """

    principal: str
    legacy: str | None = None


# Requests without a principal (where one is not required: local use) share this scope: its own,
# never the library's unscoped one, and apart from every signed caller (whose principals have
# another prefix).
ANONYMOUS = Caller("anonymous")


def iam_caller(
    *,
    account_id: str | None,
    user_id: str | None,
    user_arn: str | None = None,
    cognito_identity_id: str | None = None,
    sessions: RoleSessions = RoleSessions.SHARED,
) -> Caller | None:
    """The caller of a SigV4-signed request from the IAM authorizer's fields; None if they name nobody.

    ``user_id`` is ``userId`` (``AIDA...`` for a user, ``AROA...:<session>`` for an assumed role,
    ``<account>:<name>`` for a federated user, the account id for root), ``account_id`` the
    caller's account, ``cognito_identity_id`` the identity pool's identity, when there is one.
    """
    if not (isinstance(account_id, str) and _ACCOUNT_ID.match(account_id)):
        return None
    if isinstance(cognito_identity_id, str) and cognito_identity_id:
        return Caller(f"cognito:{account_id}:{cognito_identity_id}")
    if not isinstance(user_id, str) or not user_id:
        return None
    unique, colon, session = user_id.partition(":")
    if not _UNIQUE_ID.match(unique):
        return None
    if not colon:  # an IAM user or root: the unique id is the caller
        named = isinstance(user_arn, str) and (":user/" in user_arn or user_arn.endswith(":root"))
        legacy = f"iam:{user_arn}" if named else None
        return Caller(f"iam:{account_id}:{unique}", legacy)
    if not session:
        return None
    if sessions is RoleSessions.APART:
        return Caller(f"iam:{account_id}:{unique}/{session}")
    return Caller(f"iam:{account_id}:{unique}/*")  # every session of the role (or federated user of the account)


def jwt_caller(issuer: str, subject: str) -> Caller:
    """The caller of a request with a verified JWT: its issuer and subject (the same subject of two issuers is two)."""
    principal = f"jwt:{len(issuer)}:{issuer}:{subject}"
    return Caller(principal, legacy=principal)  # 0.1.0 built it the same way
