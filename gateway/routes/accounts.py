"""Auth: register, log in for a token, who am I, and erasure of an account."""

from gateway.http import api
from schemas.accounts import CredentialsSchema, RegisterSchema, UserSchema
from schemas.gateway import TokenSchema

NOT_STORED = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # the answer is a credential


class AccountRoutes:
    @api("POST", "/auth/register", body=RegisterSchema, responses={201: UserSchema},
         summary="Register a customer account", tags=["Auth"])
    def register(self, request, body):
        return 201, self.accounts_rpc.register(**body)

    @api("POST", "/auth/token", body=CredentialsSchema, responses={200: TokenSchema, 401: None, 409: False},
         summary="Exchange email and password for a bearer token", tags=["Auth"])
    def issue_token(self, request, body):
        user = self.accounts_rpc.authenticate(body["email"], body["password"])
        return 200, NOT_STORED, self.auth.issue_token(user)

    @api("GET", "/auth/me", auth="user", responses={200: UserSchema},
         summary="The account of the token", tags=["Auth"])
    def me(self, request, user):
        return user

    @api("DELETE", "/users/me", auth="user", responses={204: None},
         summary="Erase my account and its personal data for good", tags=["Auth"])
    def erase_me(self, request, user):
        self._erase(user["id"])

    @api("DELETE", "/users/<int:user_id>", auth="admin", responses={204: None},
         summary="Erase an account and its personal data for good", tags=["Auth"])
    def erase_user(self, request, user_id):
        self._erase(user_id)

    def _erase(self, user_id):
        self.accounts_rpc.erase_user(user_id)
        self.auth.forget_user(user_id)  # this replica at once; the others on user.erased (AccountEvents)
