"""gcp-storage-emulator's command line, with GCS's create-only precondition and generation
deletes honoured.

    python tests/gcs_emulator_main.py start --host 127.0.0.1 --port PORT --in-memory ...

gcp-storage-emulator (2026.7.19) ignores ``ifGenerationMatch``: an upload with
``ifGenerationMatch=0`` replaces an existing object, where GCS answers 412 Precondition Failed
(https://cloud.google.com/storage/docs/request-preconditions). The version-folder lock on object
storage relies on that answer, so uploads are wrapped here to give it. It also deletes the live
object on ``DELETE ...?generation=N`` whatever N is, where GCS deletes only generation N (404 when
that generation is gone); the lock's takeover of a dead holder's lock relies on that. The emulator
serves one request at a time (``http.server.HTTPServer``), so a check and its write cannot
interleave with another request.
"""

from __future__ import annotations

import sys
from http import HTTPStatus

from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator import server
from gcp_storage_emulator.handlers import objects


def _object_name(request) -> str | None:
    if "name" in request.query:
        return request.query["name"][0]
    data = request.data if isinstance(request.data, dict) else {}
    return (data.get("meta") or {}).get("name") or data.get("name")


def _create_only(upload):
    def checked(request, response, storage):
        if request.query.get("ifGenerationMatch", [None])[0] == "0":
            try:
                storage.get_file_obj(request.params["bucket_name"], _object_name(request))
            except NotFound:
                pass
            else:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "At least one of the pre-"
                                         "conditions you specified did not hold."}})
                return None
        return upload(request, response, storage)
    return checked


def _generation_delete(request, response, storage, *args, **kwargs):
    wanted = request.query.get("generation", [None])[0]
    if wanted is not None:
        try:
            live = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
        except NotFound:
            live = {}
        if str(live.get("generation")) != wanted:
            response.status = HTTPStatus.NOT_FOUND
            return None
    return objects.delete(request, response, storage, *args, **kwargs)


for _, _handlers in server.HANDLERS:
    if _handlers.get(server.DELETE) is objects.delete:
        _handlers[server.DELETE] = _generation_delete
for _name in ("_media_upload", "_multipart_upload", "_create_resumable_upload"):
    setattr(objects, _name, _create_only(getattr(objects, _name)))

if __name__ == "__main__":
    sys.exit(main())
