"""Processes of a tf.data service test, run by tests/test_data_service.py.

``serve PORT_FILE``: a dispatcher and 2 workers in this process; writes the dispatcher's address
to PORT_FILE and serves until stdin closes. ``train PORT_FILE DATA_DIR BATCH EPOCHS``: one
trainer reading load(service=ADDRESS) once PORT_FILE holds the address; prints per epoch the ids
(sha1) of the examples it got, as JSON.
"""
import hashlib
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf


def serve(port_file: str) -> None:
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer()
    address = dispatcher.target.split("://")[1]
    workers = [service.WorkerServer(service.WorkerConfig(dispatcher_address=address))
               for _ in range(2)]
    with open(port_file + ".partial", "w", encoding="utf-8") as stream:
        stream.write(dispatcher.target)
    os.replace(port_file + ".partial", port_file)  # the trainers see the whole address or none
    sys.stdin.read()  # until the test closes our stdin
    del workers


def train(port_file: str, data_dir: str, batch: int, epochs: int) -> None:
    import emnist_idx

    deadline = time.monotonic() + 120
    while not os.path.exists(port_file):
        if time.monotonic() > deadline:
            sys.exit(f"no dispatcher address in {port_file} after 120 s")
        time.sleep(0.2)
    with open(port_file, encoding="utf-8") as stream:
        address = stream.read()

    dataset = emnist_idx.load("digits", "train", batch_size=batch, normalize="none",
                              data_dir=data_dir, service=address, download=False)
    report = []
    for _ in range(epochs):  # each iteration is a new job on the service's two workers
        ids = [hashlib.sha1(image.tobytes()).hexdigest()[:12]
               for images, _ in dataset for image in np.asarray(images, np.uint8)]
        report.append(ids)
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
