// hqflow_stream_fork: one stream to N consumers in lockstep (an AXI-Stream broadcaster): a beat
// passes when every consumer is ready; consumer k sees valid only while all the others are ready,
// so that no consumer takes a beat the others do not. No storage, no cycle.
module hqflow_stream_fork #(parameter integer N = 2, WIDTH = 1) (
    input  wire             s_tvalid,
    output wire             s_tready,
    input  wire [WIDTH-1:0] s_tdata,
    input  wire             s_tlast,
    output wire [N-1:0]     m_tvalid,
    input  wire [N-1:0]     m_tready,
    output wire [N*WIDTH-1:0] m_tdata,
    output wire [N-1:0]     m_tlast
);
    assign s_tready = &m_tready;
    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : out
            wire [N-1:0] others = m_tready | ({{(N-1){1'b0}}, 1'b1} << k);
            assign m_tvalid[k] = s_tvalid && &others;
            assign m_tdata[k*WIDTH +: WIDTH] = s_tdata;
            assign m_tlast[k] = s_tlast;
        end
    endgenerate
endmodule
