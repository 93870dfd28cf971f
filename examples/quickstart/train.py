# train.py -- SkyPilot's Python SDK quickstart, with `import sky` replaced by skyterra.
# The same task as train.yaml, built from SDK objects: launch, stream provisioning and
# setup, then follow the job's logs. (Setup clones from GitHub: run it against a cloud.)
import skyterra as sky

minGPT_ddp_task = sky.Task(
    name='minGPT-ddp',
    resources=sky.Resources(
        cpus='4+',
        accelerators='L4:4',
    ),
    setup=[
        'git clone --depth 1 https://github.com/pytorch/examples || true',
        'cd examples',
        'git filter-branch --prune-empty --subdirectory-filter distributed/minGPT-ddp',
        'uv pip install --system -r requirements.txt',
    ],
    run=[
        'cd examples/mingpt',
        'export LOGLEVEL=INFO',
        'torchrun --nproc_per_node=$SKYPILOT_NUM_GPUS_PER_NODE main.py',
    ]
)

cluster_name = 'mingpt'
launch_request = sky.launch(task=minGPT_ddp_task, cluster_name=cluster_name)
job_id, _ = sky.stream_and_get(launch_request)
sky.tail_logs(cluster_name, job_id, follow=True)
