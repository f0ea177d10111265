# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""TLS between components (``tidb_tls_enabled``, TiUP's ``global.enable_tls``): which certificates a
cluster needs, whether the ones in ``tidb_tls_dir`` still fit, and the files an instance mounts.

The layout follows TiUP (pkg/cluster/manager/cacert.go, pkg/cluster/task/tls.go): one cluster CA
(``ca.crt``, its key ``ca.pem``), a client certificate ``client.crt`` / ``client.pem`` with the common
name ``<cluster>-client`` for people and for this collection's modules, and one certificate per
instance whose common name is its TiUP role and whose SANs are every name it is dialled by, plus
``localhost`` and ``127.0.0.1``. Instance certificates live under ``instances/`` so that no inventory
host name can clash with the CA or the client files.

The controller makes missing or unfitting certificates with community.crypto (roles/_common
tasks/tls.yml); this module only decides which ones, from what the files hold (``stale``), so that a
run with nothing to do costs no module run. A certificate the user put there is kept as long as it
fits: signed by ``ca.crt``, its SANs cover what the instance needs, its key matches, and it is not
about to expire.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtensionOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

# Where every instance reads its TLS files, whatever the backend (TiUP: <deploy_dir>/tls).
CONTAINER_DIR = '/etc/tidbops/tls'
# The kinds that speak TLS, by TiUP's role name (the certificate's common name and file names:
# pkg/cluster/spec/*.go Role()). TiCI has no TLS settings and MinIO runs only with TiCI (_model).
ROLES = {'pd': 'pd', 'tikv': 'tikv', 'tidb': 'tidb', 'tiflash': 'tiflash', 'ticdc': 'cdc'}
# A certificate closer than this to its end is issued again (community.crypto's default for
# x509_certificate's ownca provider is to keep it until it expires; a cluster should not learn of it then).
RENEW_BEFORE = datetime.timedelta(days=30)
ALWAYS = ('localhost', '127.0.0.1')


def paths(directory):
    """The controller-side files of a TLS directory."""
    return {'dir': directory, 'ca_cert': os.path.join(directory, 'ca.crt'), 'ca_key': os.path.join(directory, 'ca.pem'),
            'client_cert': os.path.join(directory, 'client.crt'), 'client_key': os.path.join(directory, 'client.pem')}


def instance_files(directory, name):
    base = os.path.join(directory, 'instances', name)
    return base + '.crt', base + '.pem'


def plan(directory, cluster_name, instances):
    """Every certificate a cluster needs: the client certificate and one per instance.

    ``instances``: {name: {kind, names}} with the host names and addresses the instance is dialled by.
    Returns [{name, common_name, sans, subject_alt_name, cert, key}]: ``sans`` sorted DNS names and
    IP addresses, ``subject_alt_name`` the same in community.crypto's ``DNS:``/``IP:`` forms.
    """
    where = paths(directory)
    found = [_certificate('client', '%s-client' % cluster_name, ALWAYS, where['client_cert'], where['client_key'])]
    for name in sorted(instances):
        record = instances[name]
        cert, key = instance_files(directory, name)
        found.append(_certificate(name, ROLES[record['kind']], list(record['names']) + list(ALWAYS), cert, key))
    return found


def _certificate(name, common, names, cert, key):
    sans = sorted(set(names))
    return {'name': name, 'common_name': common, 'sans': sans, 'subject_alt_name': sans_text(sans), 'cert': cert, 'key': key}


def is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def sans_text(sans):
    """community.crypto's subject_alt_name entries."""
    return ['%s:%s' % ('IP' if is_ip(name) else 'DNS', name) for name in sans]


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError:
        return None


def _names_of(cert):
    try:
        extension = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return set()
    return set(extension.get_values_for_type(x509.DNSName)) | set(str(ip) for ip in extension.get_values_for_type(x509.IPAddress))


def _not_after(cert):
    value = getattr(cert, 'not_valid_after_utc', None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _public(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate_problem(cert_pem, key_pem, ca_cert, wanted, now):
    """Why a certificate does not fit (a short phrase), or None. ``ca_cert``: the loaded CA certificate."""
    if cert_pem is None or key_pem is None:
        return 'missing'
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        return 'unreadable (%s)' % str(error).splitlines()[0]
    if _public(key.public_key()) != _public(cert.public_key()):
        return 'its key does not match it'
    if cert.issuer != ca_cert.subject:
        return 'not issued by ca.crt'
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return 'not signed by ca.crt'
    missing = sorted(set(wanted) - _names_of(cert))
    if missing:
        return 'its SANs lack %s' % ', '.join(missing)
    if _not_after(cert) - now < RENEW_BEFORE:
        return 'it expires on %s' % _not_after(cert).date().isoformat()
    return None


def stale(certificates, directory, now=None):
    """{ca: problem or None, certificates: [names to issue], problems: [what cannot be fixed here]}.

    The CA is made only when neither ``ca.crt`` nor ``ca.pem`` exists; a CA certificate without its
    key (a user's CA) cannot sign, so a certificate it would have to sign is a problem.
    """
    if not HAS_CRYPTOGRAPHY:
        return {'ca': None, 'certificates': [], 'problems': ["tidb_tls_enabled needs the Python package 'cryptography' on the "
                                                             "controller (community.crypto needs it too)"]}
    now = now or datetime.datetime.now(datetime.timezone.utc)
    where = paths(directory)
    ca_pem, ca_key_pem = _read(where['ca_cert']), _read(where['ca_key'])
    if ca_pem is None and ca_key_pem is None:
        return {'ca': 'missing', 'certificates': [item['name'] for item in certificates], 'problems': []}
    if ca_pem is None:
        return {'ca': None, 'certificates': [], 'problems': ['%s exists but %s does not: put the CA certificate beside its key, '
                                                             'or remove both to have a new CA made' % (where['ca_key'], where['ca_cert'])]}
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        return {'ca': None, 'certificates': [], 'problems': ['%s is not a PEM certificate' % where['ca_cert']]}
    issue, problems = [], []
    for item in certificates:
        why = certificate_problem(_read(item['cert']), _read(item['key']), ca_cert, item['sans'], now)
        if why is None:
            continue
        if ca_key_pem is None:
            problems.append('%s: %s, and a new one cannot be signed without the CA key %s' % (item['cert'], why, where['ca_key']))
        else:
            issue.append(item['name'])
    if _not_after(ca_cert) - now < RENEW_BEFORE:
        problems.append('%s expires on %s: renew the CA (every certificate then changes)' % (where['ca_cert'], _not_after(ca_cert).date()))
    return {'ca': None, 'certificates': issue, 'problems': problems}


def material(certificates, directory, placeholder=None, stale_names=()):
    """{ca: PEM, certificates: {name: {cert, key}}} read from the files (None for a file that is missing).

    With ``placeholder`` (check mode), the certificates in ``stale_names`` and a CA still to be made
    read as that text instead: a run without --check issues them, and a diff shows that they change.
    """
    def text(path, name=None):
        if placeholder and (name in stale_names or (name is None and not os.path.exists(path))):
            return placeholder
        data = _read(path)
        return data.decode('ascii') if data is not None else None
    return {'ca': text(paths(directory)['ca_cert']),
            'certificates': dict((item['name'], {'cert': text(item['cert'], item['name']), 'key': text(item['key'], item['name'])})
                                 for item in certificates)}


def common_name(cert_pem):
    """The subject common name of a PEM certificate (tests and messages)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode('ascii') if isinstance(cert_pem, str) else cert_pem)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
