"""MinIO's built-in identity and access management, as far as a least-privilege S3 user needs it.

The admin API (minio/minio cmd/admin-router.go, under /minio/admin/v3/) that MinioAdmin (minio-py
minioadmin.py) and `mc admin` call: add-user (its body encrypted with the root secret key, minio-py
crypto.py), user-info, add-canned-policy, info-canned-policy, idp/builtin/policy/attach (encrypted
body and answer; attaching a policy that is already attached is refused, 400 XMinioAdminPolicyChangeAlreadyApplied,
as minio cmd/api-errors.go says and minio/mc#4863 shows) and detach. Only the root credentials may
call it (403 AccessDenied otherwise).

S3 requests of a user are checked against the policies attached to it: an action is allowed when a
statement with Effect Allow matches it and no Deny does (AWS policy evaluation, which MinIO follows);
anything else is AccessDenied. Users and policies persist in the data directory, as MinIO keeps
them in .minio.sys.
"""

import fnmatch
import io
import json
import os
import threading
import urllib.parse

from . import common


class AdminError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _read_encrypted(body, secret_key):
    from minio.crypto import decrypt  # pylint: disable=import-outside-toplevel

    class Payload(io.BytesIO):
        def release_conn(self):
            pass
    try:
        return decrypt(Payload(body), secret_key)
    except Exception:  # pylint: disable=broad-except  # a body not encrypted with the root key
        raise AdminError(400, "XMinioAdminConfigBadJSON", "Unable to decrypt the request body with the root credentials.") from None


class Encrypted(dict):
    """An answer MinIO encrypts with the root secret key (madmin's PolicyAssociationResp)."""


def encrypt_answer(answer, secret_key):
    from minio.crypto import encrypt  # pylint: disable=import-outside-toplevel
    return encrypt(json.dumps(answer).encode(), secret_key)


def request_user(body, secret_key):
    return json.loads(_read_encrypted(body, secret_key)).get("user")


# ---------------------------------------------------------------------------------------------
# S3 request -> (action, resource)

def s3_action(method, path, query):
    """The IAM action and resource ARN an S3 request needs (minio cmd/api-router.go routes)."""
    segments = [s for s in path.split("/") if s]
    if not segments:
        return "s3:ListAllMyBuckets", "arn:aws:s3:::*"
    bucket = segments[0]
    if len(segments) == 1:
        resource = f"arn:aws:s3:::{bucket}"
        if method == "PUT":
            return "s3:CreateBucket", resource
        if method == "DELETE":
            return "s3:DeleteBucket", resource
        if method == "GET" and "location" in query:
            return "s3:GetBucketLocation", resource
        if method == "GET" and "uploads" in query:
            return "s3:ListBucketMultipartUploads", resource
        if method == "POST" and "delete" in query:
            return "s3:DeleteObject", resource + "/*"
        return "s3:ListBucket", resource
    resource = f"arn:aws:s3:::{bucket}/{'/'.join(segments[1:])}"
    if method in ("GET", "HEAD"):
        return ("s3:ListMultipartUploadParts" if "uploadId" in query else "s3:GetObject"), resource
    if method == "DELETE":
        return ("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject"), resource
    return "s3:PutObject", resource


def _listed(value):
    return value if isinstance(value, list) else [value]


def policy_allows(documents, action, resource):
    """AWS evaluation over ``documents``: an explicit Deny wins, else an Allow is needed."""
    allowed = False
    for document in documents:
        for statement in _listed(document.get("Statement") or []):
            actions = _listed(statement.get("Action") or [])
            resources = _listed(statement.get("Resource") or [])
            if not any(fnmatch.fnmatchcase(action, pattern) for pattern in actions):
                continue
            if not any(fnmatch.fnmatchcase(resource, pattern) for pattern in resources):
                continue
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed


class IAM:
    """Users and canned policies of one simulated MinIO, kept in <data>/.tidbsim/iam.json."""

    def __init__(self, state_dir, root_user, root_password):
        self.path = os.path.join(state_dir, "iam.json")
        self.root = (root_user, root_password)
        self.lock = threading.Lock()
        self.state = common.load_json(self.path, {"users": {}, "policies": {}})

    def _save(self):
        common.save_json(self.path, self.state)

    def secret_of(self, access_key):
        """The secret key of an access key (root or an enabled user), None if unknown."""
        if access_key == self.root[0]:
            return self.root[1]
        user = self.state["users"].get(access_key)
        return user["secretKey"] if user and user["status"] == "enabled" else None

    def allows(self, access_key, action, resource):
        if access_key == self.root[0]:
            return True
        user = self.state["users"].get(access_key) or {}
        documents = [self.state["policies"][name] for name in user.get("policies", []) if name in self.state["policies"]]
        return policy_allows(documents, action, resource)

    # ------------------------------------------------------------ admin API

    def admin(self, access_key, method, command, query, body):
        """(status, JSON-able body) of one admin call; raises AdminError."""
        if access_key != self.root[0]:
            raise AdminError(403, "AccessDenied", "Access Denied.")
        with self.lock:
            handler = {("PUT", "add-user"): self._add_user, ("GET", "user-info"): self._user_info,
                       ("PUT", "add-canned-policy"): self._add_policy, ("GET", "info-canned-policy"): self._policy_info,
                       ("POST", "idp/builtin/policy/attach"): self._attach,
                       ("POST", "idp/builtin/policy/detach"): self._detach}.get((method, command))
            if handler is None:
                raise AdminError(400, "XMinioAdminNotImplemented", f"tidbsim does not implement {method} {command}")
            return handler(query, body)

    def _arg(self, query, name):
        value = (query.get(name) or [""])[0]
        if not value:
            raise AdminError(400, "XMinioAdminInvalidArgument", "Invalid arguments specified.")
        return value

    def _add_user(self, query, body):
        access_key = self._arg(query, "accessKey")
        if access_key == self.root[0]:
            raise AdminError(400, "XMinioAdminInvalidArgument", "Cannot use the root credentials for a user.")
        request = json.loads(_read_encrypted(body, self.root[1]))
        secret = request.get("secretKey") or ""
        if len(access_key) < 3 or len(secret) < 8:
            raise AdminError(400, "XMinioAdminInvalidAccessKey", "The access key (3+) or secret key (8+) is too short.")
        user = self.state["users"].setdefault(access_key, {"policies": []})
        user.update(secretKey=secret, status=request.get("status") or "enabled")
        self._save()
        return 200, None

    def _user(self, access_key):
        user = self.state["users"].get(access_key)
        if user is None:
            raise AdminError(404, "XMinioAdminNoSuchUser", "The specified user does not exist.")
        return user

    def _user_info(self, query, _body):
        user = self._user(self._arg(query, "accessKey"))
        return 200, {"policyName": ",".join(user["policies"]), "status": user["status"]}

    def _add_policy(self, query, body):
        name = self._arg(query, "name")
        try:
            document = json.loads(body)
        except ValueError:
            raise AdminError(400, "XMinioMalformedPolicy", "Policy has invalid JSON.") from None
        if not isinstance(document, dict) or not document.get("Statement"):
            raise AdminError(400, "XMinioMalformedPolicy", "Policy has no statement.")
        self.state["policies"][name] = document
        self._save()
        return 200, None

    def _policy_info(self, query, _body):
        name = self._arg(query, "name")
        if name not in self.state["policies"]:
            raise AdminError(404, "XMinioAdminNoSuchPolicy", "The canned policy does not exist.")
        return 200, self.state["policies"][name]

    def _attach_request(self, body):
        request = json.loads(_read_encrypted(body, self.root[1]))
        if not request.get("user"):
            raise AdminError(400, "XMinioAdminInvalidArgument", "tidbsim attaches policies to users only.")
        user = self._user(request["user"])
        missing = [name for name in request.get("policies") or [] if name not in self.state["policies"]]
        if missing:
            raise AdminError(404, "XMinioAdminNoSuchPolicy", "The canned policy does not exist.")
        return user, request.get("policies") or []

    def _attach(self, _query, body):
        user, policies = self._attach_request(body)
        new = [name for name in policies if name not in user["policies"]]
        if not new:
            raise AdminError(400, "XMinioAdminPolicyChangeAlreadyApplied", "The specified policy change is already in effect.")
        user["policies"] += new
        self._save()
        return 200, Encrypted({"policiesAttached": new, "user": request_user(body, self.root[1])})

    def _detach(self, _query, body):
        user, policies = self._attach_request(body)
        gone = [name for name in policies if name in user["policies"]]
        if not gone:
            raise AdminError(400, "XMinioAdminPolicyChangeAlreadyApplied", "The specified policy change is already in effect.")
        user["policies"] = [name for name in user["policies"] if name not in gone]
        self._save()
        return 200, Encrypted({"policiesDetached": gone, "user": request_user(body, self.root[1])})


def admin_command(path):
    """The command of an admin path (/minio/admin/v3/<command>), or None."""
    prefix = "/minio/admin/v3/"
    return path[len(prefix):] if path.startswith(prefix) else None


def parse_query(environ):
    return urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
