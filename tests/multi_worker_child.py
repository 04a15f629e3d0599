"""One MultiWorkerMirroredStrategy worker (TF_CONFIG from the environment): a custom training loop
with strategy.run on load(..., input_context=ctx); prints the steps and the ids (sha1 of the image)
of the examples this worker trained on, per epoch, as JSON. Run by tests/test_multi_worker.py."""
import hashlib
import json
import sys

import numpy as np
import tensorflow as tf
import emnist_idx

data_dir, manual_dir, batch, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    dense = tf.keras.layers.Dense(10)
    dense.build((None, 784))
    optimizer = tf.keras.optimizers.SGD(0.01)

def step(images, labels):
    with tf.GradientTape() as tape:
        logits = dense(tf.reshape(images, (-1, 784)))
        loss = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) / batch
    grads = tape.gradient(loss, dense.trainable_variables)
    optimizer.apply_gradients(zip(grads, dense.trainable_variables))
    return loss

distributed = strategy.distribute_datasets_from_function(
    lambda ctx: emnist_idx.load("digits", "train", batch_size=batch, data_dir=data_dir, manual_dir=manual_dir,
                                input_context=ctx, shuffle=True, seed=1))
announced = len(emnist_idx.load("digits", "train", batch_size=batch, data_dir=data_dir))
seen = []
for epoch in range(epochs):
    ids, steps = [], 0
    for images, labels in distributed:
        for local in strategy.experimental_local_results(images):
            pixels = np.rint(local.numpy() * 255).astype(np.uint8)  # load() scales to 0..1
            ids += [hashlib.sha1(image.tobytes()).hexdigest()[:12] for image in pixels]
        strategy.run(step, args=(images, labels))
        steps += 1
    seen.append({"steps": steps, "ids": ids})
print(json.dumps({"announced": announced, "epochs": seen}))
