"""The S3 API (`/s3`, path-style) driven by boto3, the AWS CLI, curl and the swift CLI.

One cloud for the module; EC2 credentials come from the real `openstack ec2 credentials
create`. Hand-signed requests (clock skew, payload hash mismatch, streaming chunked
uploads) are signed with botocore's own signers, the chunk signatures by the test as a
streaming client would.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from unittest import mock

import boto3
import httpx
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import Cloud

BIN = Path(sys.executable).parent
SWIFT = str(BIN / "swift")
AWS = str(BIN / "aws")
S3_CONFIG = {("pocketstack", "enabled_services"): "identity,object", ("s3", "domain"): "s3.test"}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("s3cloud"), config=S3_CONFIG)
    c.start()
    yield c
    c.stop()


def ec2_credentials(cloud, env=None) -> dict:
    return cloud.os_json("ec2", "credentials", "create", env=env)


@pytest.fixture(scope="module")
def creds(cloud):
    return ec2_credentials(cloud)


def user_with_ec2(cloud, project: str, role: str, create_project: bool = False) -> dict:
    """A new user with `role` on `project` and an EC2 credential of theirs, made through the
    Identity REST API (the `openstack` CLI costs seconds per call; `creds` uses it)."""
    admin = {"X-Auth-Token": cloud.token()}
    v3 = cloud.auth_url
    if create_project:
        r = httpx.post(f"{v3}/projects", json={"project": {"name": project, "domain_id": "default"}}, headers=admin)
        assert r.status_code == 201, r.text
    project_id = httpx.get(f"{v3}/projects", params={"name": project}, headers=admin).json()["projects"][0]["id"]
    role_id = httpx.get(f"{v3}/roles", params={"name": role}, headers=admin).json()["roles"][0]["id"]
    name, password = f"u-{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex[:12]}"
    r = httpx.post(f"{v3}/users", json={"user": {"name": name, "password": password, "domain_id": "default"}},
                   headers=admin)
    assert r.status_code == 201, r.text
    user_id = r.json()["user"]["id"]
    r = httpx.put(f"{v3}/projects/{project_id}/users/{user_id}/roles/{role_id}", headers=admin)
    assert r.status_code == 204, r.text
    own = {"X-Auth-Token": cloud.token(name, password, project)}
    r = httpx.post(f"{v3}/users/{user_id}/credentials/OS-EC2", json={"tenant_id": project_id}, headers=own)
    assert r.status_code == 201, r.text
    return {**r.json()["credential"], "user": name, "password": password}


@pytest.fixture(scope="module")
def other(cloud):
    """EC2 credentials of a member of another project."""
    return user_with_ec2(cloud, "s3other", "member", create_project=True)


def client(cloud, creds, signature_version="s3v4", **extra):
    return boto3.client("s3", endpoint_url=cloud.url + "/s3", aws_access_key_id=creds["access"],
                        aws_secret_access_key=creds["secret"], region_name="us-east-1",
                        config=Config(signature_version=signature_version, s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}, **extra))


@pytest.fixture(scope="module")
def s3(cloud, creds):
    return client(cloud, creds)


def code_of(excinfo) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def new_bucket(s3, prefix="b") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def swift(cloud, *args, cwd=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    res = subprocess.run([SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", "admin",
                          "--os-password", cloud.admin_password, "--os-project-name", "admin",
                          "--os-user-domain-name", "Default", "--os-project-domain-name", "Default", *args],
                         capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"swift {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def error_xml(resp) -> dict:
    root = ET.fromstring(resp.content)
    assert root.tag == "Error", resp.text
    return {child.tag: child.text for child in root}


def signed(cloud, creds, method, path, body=b"", headers=None, auth_cls=S3SigV4Auth, secret=None):
    """A botocore-signed (SigV4) request, sent with httpx."""
    req = AWSRequest(method=method, url=cloud.url + path, data=body, headers=dict(headers or {}))
    auth_cls(Credentials(creds["access"], secret or creds["secret"]), "s3", "us-east-1").add_auth(req)
    prepared = req.prepare()
    return httpx.request(method, prepared.url, headers=dict(prepared.headers), content=body, timeout=60)


# ---------------------------------------------------------------------------- buckets
def test_bucket_crud_and_errors(s3):
    name = new_bucket(s3)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") is None
    acl = s3.get_bucket_acl(Bucket=name)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["ID"] == acl["Owner"]["ID"] and acl["Owner"]["DisplayName"] == "admin"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code_of(exc) == ("BucketAlreadyOwnedByYou", 409)
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Bad_Name")
    assert code_of(exc) == ("InvalidBucketName", 400)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert code_of(exc) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert code_of(exc) == ("404", 404)
    with pytest.raises(ClientError) as exc:
        s3.list_objects(Bucket=name)
    assert code_of(exc) == ("NoSuchBucket", 404)


# ---------------------------------------------------------------------------- objects
def test_object_crud_metadata_ranges_conditions(s3):
    bucket = new_bucket(s3)
    body = bytes(range(256)) * 4
    put = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=body, ContentType="application/x-test",
                        Metadata={"Color": "blue", "n": "1"}, ContentDisposition="attachment")
    etag = put["ETag"]
    assert etag == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"color": "blue", "n": "1"}
    assert got["ContentDisposition"] == "attachment"
    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == 1024 and head["ETag"] == etag
    part = s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=10-19")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == "bytes 10-19/1024" and part["Body"].read() == body[10:20]
    tail = s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=-4")
    assert tail["Body"].read() == body[-4:]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=5000-")
    assert code_of(exc) == ("InvalidRange", 416)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin", IfNoneMatch=etag)
    assert code_of(exc)[1] == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin", IfMatch='"0000"')
    assert code_of(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin", IfMatch=etag)["Body"].read() == body
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin", IfUnmodifiedSince=past)
    assert code_of(exc) == ("PreconditionFailed", 412)
    # conditional create
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=b"new", IfNoneMatch="*")
    assert code_of(exc) == ("PreconditionFailed", 412)
    # overwrite, delete, missing keys
    s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=b"v2")
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"v2"
    assert s3.delete_object(Bucket=bucket, Key="dir/obj.bin")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert code_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert code_of(exc) == ("404", 404)
    assert s3.delete_object(Bucket=bucket, Key="never")["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.get_object_acl(Bucket=bucket, Key="k")["Grants"][0]["Permission"] == "FULL_CONTROL"
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert code_of(exc) == ("NotImplemented", 501)


def test_copy_object(s3):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", ContentType="text/x-src", Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="same-meta", CopySource={"Bucket": bucket, "Key": "src"})
    got = s3.get_object(Bucket=bucket, Key="same-meta")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"a": "1"}
    assert got["ContentType"] == "text/x-src"
    res = s3.copy_object(Bucket=bucket, Key="new-meta", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                         Metadata={"b": "2"}, ContentType="text/plain")
    assert res["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    head = s3.head_object(Bucket=bucket, Key="new-meta")
    assert head["Metadata"] == {"b": "2"} and head["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code_of(exc) == ("InvalidRequest", 400)
    # in-place metadata update is allowed with REPLACE
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "src"},
                       CopySourceIfMatch='"nope"')
    assert code_of(exc) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert code_of(exc) == ("NoSuchKey", 404)


# ---------------------------------------------------------------------------- listings
def test_listings_v1_v2(s3):
    bucket = new_bucket(s3)
    keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d e+f", "sp%ce"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    v1 = s3.list_objects(Bucket=bucket)
    assert [o["Key"] for o in v1["Contents"]] == sorted(keys)
    assert v1["Contents"][0]["Size"] == 3 and v1["Contents"][0]["ETag"] == f'"{hashlib.md5(b"a/1").hexdigest()}"'
    top = s3.list_objects(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in top["Contents"]] == ["c", "d e+f", "sp%ce"]
    under = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in under["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in under["CommonPrefixes"]] == ["a/b/"]
    assert under["KeyCount"] == 3
    # v1 pagination by marker (botocore's paginator follows NextMarker)
    pages = list(s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 4 and [o["Key"] for p in pages for o in p.get("Contents", [])] == sorted(keys)
    first = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert first["IsTruncated"] and first["NextMarker"] == "a/2"
    # v2 pagination by continuation token, with a delimiter
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/",
                                                                PaginationConfig={"PageSize": 2}))
    seen = [o["Key"] for p in pages for o in p.get("Contents", [])] + \
        [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    assert sorted(seen) == ["a/", "b/", "c", "d e+f", "sp%ce"]
    assert all(p["IsTruncated"] for p in pages[:-1]) and not pages[-1]["IsTruncated"]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="b/1", FetchOwner=True)
    assert [o["Key"] for o in after["Contents"]] == ["c", "d e+f", "sp%ce"]
    assert "Owner" in after["Contents"][0]
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    # encoding-type=url: botocore leaves keys encoded when the caller asked for it
    enc = s3.list_objects_v2(Bucket=bucket, Prefix="d", EncodingType="url")
    assert [o["Key"] for o in enc["Contents"]] == ["d%20e%2Bf"]
    empty = s3.list_objects(Bucket=bucket, MaxKeys=0)
    assert "Contents" not in empty and not empty["IsTruncated"]
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="!!!not-a-token")
    assert code_of(exc) == ("InvalidArgument", 400)


def test_raw_listing_xml_is_url_encoded(cloud, creds, s3):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="x y+z", Body=b"1")
    resp = signed(cloud, creds, "GET", f"/s3/{bucket}?list-type=2&encoding-type=url")
    assert resp.status_code == 200
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    root = ET.fromstring(resp.content)
    assert root.find(f"{ns}Contents/{ns}Key").text == "x%20y%2Bz"
    assert root.find(f"{ns}EncodingType").text == "url"


def test_multi_object_delete(s3):
    bucket = new_bucket(s3)
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k0"}, {"Key": "k1"}, {"Key": "absent"}]})
    assert sorted(d["Key"] for d in res["Deleted"]) == ["absent", "k0", "k1"] and "Errors" not in res
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k2"}, {"Key": "k3"}], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == ["k4"]


def test_malformed_xml_and_no_write(cloud, creds, s3):
    bucket = new_bucket(s3)
    resp = signed(cloud, creds, "POST", f"/s3/{bucket}?delete", body=b"<Delete><Object>")
    assert resp.status_code == 400 and error_xml(resp)["Code"] == "MalformedXML"
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Delete><Object><Key>&a;</Key></Object></Delete>'
    resp = signed(cloud, creds, "POST", f"/s3/{bucket}?delete", body=doctype)
    assert resp.status_code == 400 and error_xml(resp)["Code"] == "MalformedXML"
    resp = signed(cloud, creds, "PUT", f"/s3/{bucket}-new", body=b"<CreateBucketConfiguration><Location")
    assert resp.status_code == 400 and error_xml(resp)["Code"] == "MalformedXML"
    assert f"{bucket}-new" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    resp = signed(cloud, creds, "PATCH", f"/s3/{bucket}/k")
    assert resp.status_code == 405 and error_xml(resp)["Code"] == "MethodNotAllowed"
    resp = signed(cloud, creds, "PUT", f"/s3/{bucket}/k?partNumber=1&uploadId=nope", body=b"x")
    assert resp.status_code == 404 and error_xml(resp)["Code"] == "NoSuchUpload"
    err = error_xml(signed(cloud, creds, "GET", f"/s3/{bucket}/nokey"))
    assert err["Code"] == "NoSuchKey" and err["Resource"] == f"/s3/{bucket}/nokey" and err["RequestId"]


# ---------------------------------------------------------------------------- multipart
def test_multipart_upload_file_and_swift_download(cloud, s3, tmp_path):
    bucket = new_bucket(s3)
    data = os.urandom(12 * MiB + 123)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    s3.upload_file(str(src), bucket, "big.bin", ExtraArgs={"Metadata": {"kind": "big"}},
                   Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    md5s = b"".join(hashlib.md5(data[i:i + 5 * MiB]).digest() for i in range(0, len(data), 5 * MiB))
    assert head["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    assert head["ContentLength"] == len(data) and head["Metadata"] == {"kind": "big"}
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == data
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads") is None
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["ETag"] == head["ETag"]
    # Swift clients see the same object, and its ETag matches its bytes
    assert swift(cloud, "list", bucket).stdout.split() == ["big.bin"]
    out = tmp_path / "swift.bin"
    swift(cloud, "download", bucket, "big.bin", "-o", str(out))
    assert out.read_bytes() == data
    # and a hidden segments container holds no leftover parts
    assert swift(cloud, "list", bucket + "+segments").stdout.strip() == ""
    assert bucket + "+segments" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_multipart_api_and_errors(cloud, s3):
    bucket = new_bucket(s3)
    key = "mp/obj"
    mp = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="text/x-mp", Metadata={"m": "1"})
    uid = mp["UploadId"]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, uid)]
    p1 = b"1" * (5 * MiB)
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    s3.put_object(Bucket=bucket, Key="copysrc", Body=b"0123456789" * 100)
    cp = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "copysrc"}, CopySourceRange="bytes=0-99")
    e2 = cp["CopyPartResult"]["ETag"]
    e3 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=3, Body=b"three")["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, 5 * MiB), (2, 100), (3, 5)]
    page = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=10001, Body=b"x")
    assert code_of(exc) == ("InvalidArgument", 400)

    def complete(parts):
        return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                            MultipartUpload={"Parts": parts})
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": '"' + "0" * 32 + '"'}])
    assert code_of(exc) == ("InvalidPart", 400)
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 3, "ETag": e3}, {"PartNumber": 1, "ETag": e1}])
    assert code_of(exc) == ("InvalidPartOrder", 400)
    with pytest.raises(ClientError) as exc:
        complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}])
    assert code_of(exc) == ("EntityTooSmall", 400)
    done = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e3}])
    assert done["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == p1 + b"three"
    assert got["ContentType"] == "text/x-mp" and got["Metadata"] == {"m": "1"} and got["ETag"] == done["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert code_of(exc) == ("NoSuchUpload", 404)
    # abort
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="aborted", UploadId=uid2, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=uid2)
    with pytest.raises(ClientError) as exc:
        s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=uid2)
    assert code_of(exc) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="aborted")
    assert code_of(exc) == ("404", 404)
    assert swift(cloud, "list", bucket + "+segments").stdout.strip() == ""
    journal = [json.loads(line) for line in (cloud.state_dir / "logs" / "events.jsonl").read_text().splitlines()]
    done = [e for e in journal if e.get("event_type") == "object.s3.multipart_completed"
            and e.get("payload", {}).get("upload_id") == uid]
    assert done and done[0]["payload"]["parts"] == 2


# ---------------------------------------------------------------------------- AWS CLI
@pytest.fixture(scope="module")
def aws_env(cloud, creds, tmp_path_factory):
    home = tmp_path_factory.mktemp("aws")
    (home / "config").write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    (home / "credentials").write_text(f"[default]\naws_access_key_id = {creds['access']}\n"
                                      f"aws_secret_access_key = {creds['secret']}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(home / "config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"))
    return env


def aws(cloud, env, *args, check=True):
    res = subprocess.run([AWS, "--endpoint-url", cloud.url + "/s3", *args], capture_output=True, text=True,
                         timeout=300, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def test_aws_cli(cloud, aws_env, tmp_path):
    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    aws(cloud, aws_env, "s3", "mb", f"s3://{bucket}")
    big = tmp_path / "big20"
    data = os.urandom(20 * MiB)
    big.write_bytes(data)
    small = tmp_path / "small.txt"
    small.write_text("hello from the aws cli\n")
    aws(cloud, aws_env, "s3", "cp", "--only-show-errors", str(big), f"s3://{bucket}/dir/big20")
    aws(cloud, aws_env, "s3", "cp", "--only-show-errors", str(small), f"s3://{bucket}/small.txt")
    listing = aws(cloud, aws_env, "s3", "ls", f"s3://{bucket}/").stdout
    assert "PRE dir/" in listing and "small.txt" in listing
    assert "20971520 dir/big20" in aws(cloud, aws_env, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    head = json.loads(aws(cloud, aws_env, "s3api", "head-object", "--bucket", bucket, "--key", "dir/big20").stdout)
    assert head["ContentLength"] == 20 * MiB and head["ETag"].endswith('-3"')  # 8 MiB chunks
    back = tmp_path / "back"
    aws(cloud, aws_env, "s3", "cp", "--only-show-errors", f"s3://{bucket}/dir/big20", str(back))
    assert back.read_bytes() == data
    objs = json.loads(aws(cloud, aws_env, "s3api", "list-objects-v2", "--bucket", bucket).stdout)
    assert [o["Key"] for o in objs["Contents"]] == ["dir/big20", "small.txt"]
    res = aws(cloud, aws_env, "s3", "rb", f"s3://{bucket}", check=False)
    assert res.returncode != 0 and "BucketNotEmpty" in res.stderr
    aws(cloud, aws_env, "s3", "rm", "--only-show-errors", "--recursive", f"s3://{bucket}")
    aws(cloud, aws_env, "s3", "rb", f"s3://{bucket}")
    assert bucket not in aws(cloud, aws_env, "s3", "ls").stdout


# ---------------------------------------------------------------------------- presigned URLs
def curl(*args) -> tuple[int, bytes]:
    res = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, timeout=60)
    body, _, status = res.stdout.rpartition(b"\n")
    return int(status), body


def test_presigned_urls_with_curl(cloud, creds, s3):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="file name.txt", Body=b"presigned content")
    for version in ("s3v4", "s3"):
        c = client(cloud, creds, signature_version=version)
        url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "file name.txt"},
                                       ExpiresIn=300)
        assert curl(url) == (200, b"presigned content"), version
        put_url = c.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"up-{version}"},
                                           ExpiresIn=300)
        # (no Content-Type: curl's default would be part of a v2 signature the URL does not have)
        status, _ = curl("-X", "PUT", "-H", "Content-Type:", "--data-binary", f"via {version}", put_url)
        assert status == 200, version
        assert s3.get_object(Bucket=bucket, Key=f"up-{version}")["Body"].read() == f"via {version}".encode()
        # a tampered URL does not match its signature; nothing is written
        evil = put_url.replace(f"up-{version}", "evil")
        status, body = curl("-X", "PUT", "-H", "Content-Type:", "--data-binary", "evil", evil)
        assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="evil")
    # an expired URL
    past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(hours=2)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past):
        old = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "file name.txt"},
                                        ExpiresIn=60)
    status, body = curl(old)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"expired" in body


# ---------------------------------------------------------------------------- signatures
def test_signature_errors_and_nothing_written(cloud, creds, s3):
    bucket = new_bucket(s3)
    bad = client(cloud, {"access": creds["access"], "secret": "wrong-secret"})
    with pytest.raises(ClientError) as exc:
        bad.put_object(Bucket=bucket, Key="forged", Body=b"x")
    assert code_of(exc) == ("SignatureDoesNotMatch", 403)
    unknown = client(cloud, {"access": "0" * 32, "secret": "whatever"})
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    assert code_of(exc) == ("InvalidAccessKeyId", 403)
    bad_v2 = client(cloud, {"access": creds["access"], "secret": "wrong-secret"}, signature_version="s3")
    with pytest.raises(ClientError) as exc:
        bad_v2.put_object(Bucket=bucket, Key="forged", Body=b"x")
    assert code_of(exc) == ("SignatureDoesNotMatch", 403)
    anon = httpx.put(f"{cloud.url}/s3/{bucket}/forged", content=b"x")
    assert anon.status_code == 403 and error_xml(anon)["Code"] == "AccessDenied"
    # the body must match the signed x-amz-content-sha256
    req = AWSRequest(method="PUT", url=f"{cloud.url}/s3/{bucket}/forged", data=b"signed body")
    S3SigV4Auth(Credentials(creds["access"], creds["secret"]), "s3", "us-east-1").add_auth(req)
    resp = httpx.put(req.url, headers=dict(req.headers), content=b"other body!")
    assert resp.status_code == 400 and error_xml(resp)["Code"] == "XAmzContentSHA256Mismatch"
    # a wrong flexible checksum (botocore sends x-amz-checksum-crc32 by default)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="forged", Body=b"abc", ChecksumCRC32="AAAAAA==")
    assert code_of(exc) == ("BadDigest", 400)
    # a wrong Content-MD5
    resp = signed(cloud, creds, "PUT", f"/s3/{bucket}/forged", body=b"abc",
                  headers={"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})
    assert resp.status_code == 400 and error_xml(resp)["Code"] == "BadDigest"
    # a request signed 20 minutes ago
    skewed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
        resp = signed(cloud, creds, "PUT", f"/s3/{bucket}/forged", body=b"late")
    assert resp.status_code == 403 and error_xml(resp)["Code"] == "RequestTimeTooSkewed"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="forged")
    assert code_of(exc) == ("404", 404)
    assert s3.list_objects(Bucket=bucket).get("Contents") is None
    # SigV2 with the right secret works for every call
    v2 = client(cloud, creds, signature_version="s3")
    v2.put_object(Bucket=bucket, Key="v2 key", Body=b"v2", Metadata={"x": "y"})
    assert v2.get_object(Bucket=bucket, Key="v2 key")["Body"].read() == b"v2"
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]] == ["v2 key"]
    assert bucket in [b["Name"] for b in v2.list_buckets()["Buckets"]]


class _StreamingAuth(SigV4Auth):
    """SigV4 keeping the preset x-amz-content-sha256 (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""

    def payload(self, request):
        return request.headers["X-Amz-Content-SHA256"]


def _chunked_body(creds, headers, chunks: list[bytes], tamper: bool = False) -> bytes:
    """aws-chunked framing with chained chunk signatures, as streaming SDK clients send it."""
    amz_date = headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key = ("AWS4" + creds["secret"]).encode()
    for part in (amz_date[:8], "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    previous = headers["Authorization"].rsplit("Signature=", 1)[1]
    out = b""
    for data in chunks + [b""]:
        to_sign = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, hashlib.sha256(b"").hexdigest(),
                             hashlib.sha256(data).hexdigest()))
        sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if tamper and data:
            sig = "0" * 64
        out += f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"
        previous = sig
    return out


def test_streaming_signed_chunked_upload(cloud, creds, s3):
    bucket = new_bucket(s3)
    chunks = [os.urandom(65536), os.urandom(65536), b"tail"]
    data = b"".join(chunks)

    def send(key, tamper=False):
        base = {"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Encoding": "aws-chunked",
                "X-Amz-Decoded-Content-Length": str(len(data)), "Content-Type": "application/x-chunked"}
        req = AWSRequest(method="PUT", url=f"{cloud.url}/s3/{bucket}/{key}", headers=base)
        _StreamingAuth(Credentials(creds["access"], creds["secret"]), "s3", "us-east-1").add_auth(req)
        headers = dict(req.headers)
        body = _chunked_body(creds, headers, chunks, tamper)
        headers["Content-Length"] = str(len(body))
        return httpx.put(req.url, headers=headers, content=body, timeout=60)

    resp = send("streamed")
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="streamed")
    assert got["Body"].read() == data and got["ContentType"] == "application/x-chunked"
    assert "ContentEncoding" not in got
    resp = send("tampered", tamper=True)
    assert resp.status_code == 403 and error_xml(resp)["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="tampered")


def test_streaming_unsigned_trailer_upload(cloud, creds, s3):
    """What botocore sends over HTTPS: aws-chunked, unsigned chunks, a CRC32 trailer."""
    import base64
    import zlib

    bucket = new_bucket(s3)
    data = os.urandom(100000)

    def send(key, crc):
        headers = {"X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
                   "X-Amz-Decoded-Content-Length": str(len(data)), "X-Amz-Trailer": "x-amz-checksum-crc32"}
        req = AWSRequest(method="PUT", url=f"{cloud.url}/s3/{bucket}/{key}", headers=headers)
        _StreamingAuth(Credentials(creds["access"], creds["secret"]), "s3", "us-east-1").add_auth(req)
        trailer = base64.b64encode(crc.to_bytes(4, "big")).decode()
        body = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
                + f"x-amz-checksum-crc32:{trailer}\r\n\r\n".encode())
        return httpx.put(req.url, headers={**dict(req.headers), "Content-Length": str(len(body))}, content=body)

    resp = send("trailed", zlib.crc32(data))
    assert resp.status_code == 200, resp.text
    assert s3.get_object(Bucket=bucket, Key="trailed")["Body"].read() == data
    resp = send("bad-crc", zlib.crc32(data) ^ 1)
    assert resp.status_code == 400 and error_xml(resp)["Code"] == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad-crc")


def test_virtual_host_addressing(cloud, creds, s3):
    """`<bucket>.s3.test` (`[s3] domain`); the names resolve to 127.0.0.1 for this test."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and (host == "s3.test" or host.endswith(".s3.test")):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    bucket = f"vh-{uuid.uuid4().hex[:8]}"
    with mock.patch("socket.getaddrinfo", resolve):
        urls = {}
        for version in ("s3v4", "s3"):
            vh = boto3.client("s3", endpoint_url=f"http://s3.test:{cloud.port}/s3", region_name="us-east-1",
                              aws_access_key_id=creds["access"], aws_secret_access_key=creds["secret"],
                              config=Config(signature_version=version, s3={"addressing_style": "virtual"},
                                            retries={"max_attempts": 1}))
            if version == "s3v4":
                vh.create_bucket(Bucket=bucket)
            vh.put_object(Bucket=bucket, Key=f"dir/{version} a+b.txt", Body=version.encode())
            assert vh.get_object(Bucket=bucket, Key=f"dir/{version} a+b.txt")["Body"].read() == version.encode()
            assert vh.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
            urls[version] = vh.generate_presigned_url("get_object", ExpiresIn=300,
                                                      Params={"Bucket": bucket, "Key": f"dir/{version} a+b.txt"})
        keys = [o["Key"] for o in vh.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]]
        assert keys == ["dir/s3 a+b.txt", "dir/s3v4 a+b.txt"]
    for version, url in urls.items():
        assert url.startswith(f"http://{bucket}.s3.test:{cloud.port}/s3/dir/")
        assert curl("--resolve", f"{bucket}.s3.test:{cloud.port}:127.0.0.1", url) == (200, version.encode())
    assert s3.get_object(Bucket=bucket, Key="dir/s3v4 a+b.txt")["Body"].read() == b"s3v4"


# ---------------------------------------------------------------------------- projects and Swift
def test_foreign_project_buckets(cloud, s3, other):
    mine = new_bucket(s3, "mine")
    s3.put_object(Bucket=mine, Key="secret", Body=b"mine")
    theirs = client(cloud, other)
    assert mine not in [b["Name"] for b in theirs.list_buckets()["Buckets"]]
    for call in (lambda: theirs.list_objects(Bucket=mine), lambda: theirs.get_object(Bucket=mine, Key="secret"),
                 lambda: theirs.put_object(Bucket=mine, Key="x", Body=b"x"),
                 lambda: theirs.delete_object(Bucket=mine, Key="secret")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        theirs.create_bucket(Bucket=mine)
    assert code_of(exc) == ("BucketAlreadyExists", 409)
    with pytest.raises(ClientError) as exc:
        theirs.copy_object(Bucket=new_bucket(theirs, "theirs"), Key="stolen",
                           CopySource={"Bucket": mine, "Key": "secret"})
    assert code_of(exc) == ("AccessDenied", 403)
    assert s3.get_object(Bucket=mine, Key="secret")["Body"].read() == b"mine"
    # a name freed by its owner can be taken
    s3.delete_object(Bucket=mine, Key="secret")
    s3.delete_bucket(Bucket=mine)
    theirs.create_bucket(Bucket=mine)
    assert mine in [b["Name"] for b in theirs.list_buckets()["Buckets"]]


def test_reader_role_reads_only(cloud, s3):
    bucket = new_bucket(s3, "ro")
    s3.put_object(Bucket=bucket, Key="k", Body=b"readable")
    reader = client(cloud, user_with_ec2(cloud, "admin", "reader"))
    assert reader.get_object(Bucket=bucket, Key="k")["Body"].read() == b"readable"
    assert bucket in [b["Name"] for b in reader.list_buckets()["Buckets"]]
    for call in (lambda: reader.put_object(Bucket=bucket, Key="w", Body=b"x"),
                 lambda: reader.delete_object(Bucket=bucket, Key="k"),
                 lambda: reader.create_bucket(Bucket=f"ro-{uuid.uuid4().hex[:8]}")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == ("AccessDenied", 403)
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == ["k"]


def test_cross_visibility_with_swift(cloud, s3, tmp_path):
    bucket = new_bucket(s3, "shared")
    s3.put_object(Bucket=bucket, Key="from-s3.txt", Body=b"written by S3", Metadata={"Owner-Tag": "s3"})
    assert swift(cloud, "list", bucket).stdout.split() == ["from-s3.txt"]
    stat = swift(cloud, "stat", bucket, "from-s3.txt").stdout
    assert "Owner-Tag: s3" in stat
    swift(cloud, "download", bucket, "from-s3.txt", "-o", str(tmp_path / "dl"))
    assert (tmp_path / "dl").read_bytes() == b"written by S3"
    (tmp_path / "from-swift.txt").write_bytes(b"written by swift")
    swift(cloud, "upload", bucket, "from-swift.txt", "-H", "X-Object-Meta-Color: red", cwd=tmp_path)
    got = s3.get_object(Bucket=bucket, Key="from-swift.txt")
    assert got["Body"].read() == b"written by swift" and got["Metadata"]["color"] == "red"
    swift(cloud, "post", "swift-made")
    assert "swift-made" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.put_object(Bucket="swift-made", Key="k", Body=b"v")
    assert swift(cloud, "list", "swift-made").stdout.split() == ["k"]


# ---------------------------------------------------------------------------- unit tests (no cloud)
def test_unit_xml_parse_and_error_body():
    from pocketstack.object.s3.xml import S3Error, parse, render_error

    assert parse(b"<Delete xmlns='x'><Quiet>true</Quiet></Delete>", "Delete") is not None
    for bad in (b"", b"<Delete>", b"<Other/>", b'<!DOCTYPE d [<!ENTITY e "x">]><Delete>&e;</Delete>'):
        with pytest.raises(S3Error) as exc:
            parse(bad, "Delete")
        assert exc.value.s3_code == "MalformedXML" and exc.value.code == 400
    body = render_error(S3Error("NoSuchKey", Key="a<b"), None).body.decode()
    assert "<Code>NoSuchKey</Code>" in body and "<Key>a&lt;b</Key>" in body and "<RequestId>" in body


def test_unit_ranges_and_canonical_query():
    from pocketstack.object.s3.api import parse_range
    from pocketstack.object.s3.auth import _canonical_query
    from pocketstack.object.s3.xml import S3Error

    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-", 100) == (90, 100)
    assert parse_range("bytes=-5", 100) == (95, 100)
    assert parse_range("bytes=0-1,5-6", 100) is None and parse_range("items=0-1", 100) is None
    with pytest.raises(S3Error):
        parse_range("bytes=100-", 100)
    assert _canonical_query("b=2&a=%20x&uploads&a=1", drop=None) == "a=%20x&a=1&b=2&uploads="
    assert _canonical_query("X-Amz-Signature=s&k=v~+", drop="X-Amz-Signature") == "k=v~%2B"
