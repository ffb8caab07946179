"""Resuming a run at the exact next batch: ``fit`` from a restored step and stream position."""

from __future__ import annotations


def fit_resumably(model, stream, plan, restored, checkpoint, callbacks, strategy):
    """``model.fit`` from the restored step to the end of the plan.

    Keras restarts an epoch at its first batch; a restore in mid-epoch therefore fits the
    rest of that epoch first (``steps_per_epoch`` = the steps left), then the remaining
    epochs on a stream rebuilt from the position reached. Every stream starts at the
    exact next raw element (``stream(start, positions)``). Each step consumes one batch per
    replica of this worker's input pipeline.
    """
    import keras

    from siameseim_tf.data.pipeline import StreamPositions
    from siameseim_tf.training.checkpoints import num_workers, train_step_count

    batches_per_step = strategy.num_replicas_in_sync // num_workers(strategy)

    spe = plan.steps_per_epoch
    step = restored.step if restored is not None else 0
    start = restored.data_start if restored is not None else 0
    history = keras.callbacks.History()  # stays empty when a restart finds nothing left
    history.history = {}
    while step < plan.max_epochs * spe and (plan.total_steps is None or step < plan.total_steps):
        epoch, into = divmod(step, spe)
        positions = StreamPositions(start)
        base = step
        checkpoint.data_start = lambda s, p=positions, b=base: p.next_start(
            (s - b) * batches_per_step
        )
        history = model.fit(
            stream(start, positions),
            initial_epoch=epoch,
            epochs=epoch + 1 if into else plan.max_epochs,
            steps_per_epoch=spe - into,
            callbacks=callbacks,
            shuffle=False,  # the stream shuffles itself, per pass and seeded
            verbose=0,
        )
        step = train_step_count(model)
        if model.stop_training or not into:
            break
        start = positions.next_start((step - base) * batches_per_step)
    return history
